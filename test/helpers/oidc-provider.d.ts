/**
 * The little of `oidc-provider` (which ships no types) that the tests use: a provider made
 * from an issuer and a configuration, its request handler, and its events.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface Account {
    accountId: string;
    claims(): Record<string, unknown> | Promise<Record<string, unknown>>;
  }

  export interface Configuration {
    clients?: Array<Record<string, unknown>>;
    features?: Record<string, { enabled: boolean } & Record<string, unknown>>;
    claims?: Record<string, string[]>;
    conformIdTokenClaims?: boolean;
    findAccount?: (ctx: unknown, id: string) => Account | Promise<Account | undefined> | undefined;
    cookies?: { keys?: string[] };
    ttl?: Record<string, number>;
    fetch?: (url: string, options: RequestInit & { dispatcher?: unknown }) => Promise<Response>;
  }

  export default class Provider {
    constructor(issuer: string, configuration?: Configuration);
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    on(event: string, listener: (...args: never[]) => void): this;
  }
}
