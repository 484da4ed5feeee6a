import type { DecisionLog } from '../../config/schema.js';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { StateProvider } from '../../state/services.js';
import type { RuntimeSettings } from '../runtime-settings.js';
import type { DecisionCaches } from './decision-caches.js';
import type { DecisionObserver } from './decision-log.js';

/** What every front of the decision function (the sideband doors, the inline proxy) is given. */
export interface DecisionFrontOptions {
  provider: StateProvider;
  settings(): RuntimeSettings;
  clock: Clock;
  log: Logger;
  decisionLog: DecisionLog;
  /** This engine's node id, in the decision log. */
  engineId: string;
  /** `[http] trusted_proxies`: balancers whose X-Forwarded-For is believed to find the client (empty: none). */
  trustedProxies?: readonly string[];
  /** The engine's decision caches, shared by the doors and the inline proxy (none: every decision reads the state). */
  caches?: DecisionCaches;
  /** Counts every decision (the node's metrics). */
  observeDecision?: DecisionObserver;
}
