/**
 * The decision log: one structured line per decision, sampled by `[access] decision_log`
 * (`all`, `deny`: denies and monitor-mode would-be denies, `none`), at level info.
 */
import type { DecisionLog } from '../../config/schema.js';
import type { Logger } from '../../core/logger.js';
import type { Decision } from './decide.js';

/** Counts decisions for the node's metrics (node/metrics.ts `decision`). */
export type DecisionObserver = (api: string | undefined, allow: boolean, reason: string, durationMs: number) => void;

/**
 * Logs a decision (sampled) and counts it (every one): the one place every front door and
 * the inline proxy report their decisions to.
 */
export function logDecision(log: Logger, mode: DecisionLog, engine: string, d: Decision, observe?: DecisionObserver): void {
  observe?.(d.api, d.allow, d.reason, d.durationMs);
  if (mode === 'none' || (mode === 'deny' && d.allow && d.wouldDeny === undefined)) return;
  // The line's own `time` (written by the logger) is the decision's time.
  log.info({
    decisionId: d.decisionId,
    engine,
    api: d.api ?? null,
    method: d.method,
    path: d.path,
    sourceIp: d.sourceIp,
    subject: d.identity?.subject ?? null,
    decision: d.allow ? 'allow' : 'deny',
    reason: d.reason,
    ...(d.wouldDeny ? { wouldDeny: d.wouldDeny } : {}),
    ...(d.detail ? { detail: d.detail } : {}),
    enforce: d.enforce,
    durationMs: d.durationMs,
  }, 'access decision');
}
