/**
 * The configuration protocol between the console and the engines (rpc/protocol.ts): what
 * both sides need, so it lives here rather than in console/ or engine/. The console (and the
 * replica) tell engines a new version exists (`config.changed`, one-way); engines fetch it
 * (`config.fetch`) and report what they applied (`config.applied`, one-way). The replica
 * also fetches, and serves `config.changed` to pull at once. The replica-only methods are in
 * console/console-protocol.ts.
 *
 * Append-only (rpc/protocol.ts); `since` is the wire-protocol version in which the method
 * appeared (transport/handshake.ts):
 *
 *   method            since  what
 *   config.changed    1      a new configuration version exists (console → engines, replica)
 *   config.fetch      1      the configuration, signed over the asker's nonce
 *   config.applied    1      the version an engine applied, and when (engine → console)
 */
import type { ConfigDocument } from '../repository/repository.js';
import { bool, num, object, str } from '../rpc/body-schema.js';
import { defineProtocol, ProtocolRpc } from '../rpc/protocol.js';
import type { Rpc } from '../rpc/rpc.js';
import type { Logger } from '../core/logger.js';
import type { AuthorityProof } from './console-authority.js';

/** `config.fetch`, asked of the console (console/config-publisher.ts answers it). */
export interface FetchRequest {
  version: number;
  epoch: number;
  /** When the asker applied `version` (engines), for the replication delay shown by the console. */
  appliedAt?: number;
  /** The asker could not apply the last configuration it got: why. */
  error?: string;
  /** Send every section whatever the version and epoch: the asker holds no copy it trusts. */
  full?: boolean;
  /** Fresh per request: the answer's signature covers it, so an old answer cannot be replayed. */
  nonce?: string;
}

export interface FetchAnswer {
  epoch: number;
  version: number;
  /** Latest document of every section; absent when the asker is up to date (and asked no full copy). */
  sections?: Record<string, ConfigDocument>;
  /** The console authority's signature of fetchStatement(answer) over the request's nonce. */
  proof?: AuthorityProof;
}

export interface ConfigChanged {
  version: number;
  epoch: number;
}

export interface ConfigApplied {
  version: number;
  appliedAt: number;
}

export type ConfigMethods = {
  'config.changed': { request: ConfigChanged; answer: boolean };
  'config.fetch': { request: FetchRequest; answer: FetchAnswer };
  'config.applied': { request: ConfigApplied; answer: boolean };
};

export const CONFIG_PROTOCOL = defineProtocol<ConfigMethods>('config', {
  'config.changed': { since: 1, request: object({ version: num, epoch: num }) },
  'config.fetch': { since: 1, request: object({ version: num, epoch: num }, { appliedAt: num, error: str, full: bool, nonce: str }) },
  'config.applied': { since: 1, request: object({ version: num, appliedAt: num }) },
});

export type ConfigRpc = ProtocolRpc<ConfigMethods>;

/** The node's Rpc seen through the configuration protocol's table. */
export function configRpc(rpc: Rpc, logger?: Logger): ConfigRpc {
  return new ProtocolRpc(rpc, CONFIG_PROTOCOL, logger);
}
