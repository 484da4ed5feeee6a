import type { Server as TlsServer } from 'node:tls';
import type { Clock, TimerHandle } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { TlsSettings } from '../config/node-config.js';
import { loadTlsMaterial, tlsFilesSignature, type TlsMaterial } from '../http/tls.js';

export interface TlsReloaderOptions {
  settings: TlsSettings;
  /** What the listeners were started with; the signature is taken with it, so a change made before the first poll is seen. */
  initial: TlsMaterial;
  initialSignature: string;
  /** The HTTPS listeners of the node, at the moment of each reload (some start later than others). */
  servers: () => TlsServer[];
  clock: Clock;
  log: Logger;
}

/**
 * Puts a certificate replaced on disk into every HTTPS listener without a restart.
 *
 * Every `reload_interval` it compares the files' modification times, sizes and inodes with
 * those of the set last tried (a poll rather than fs.watch: a watch misses files replaced by
 * rename, as certificate tools and Kubernetes secrets do, and the poll goes through the
 * injected clock). On a change it loads the whole set and hands it to each listener's
 * `setSecureContext`: new connections get the new certificate, open ones keep theirs. A set
 * that does not load — the key written before the certificate, a half-written file — is
 * logged once as NODE_TLS_RELOAD_FAILED and the listeners keep the set they had; the next
 * change to any of the files is tried again.
 */
export class TlsReloader {
  private timer: TimerHandle | undefined;
  private signature: string;
  private current: TlsMaterial;
  private stopped = false;

  constructor(private readonly options: TlsReloaderOptions) {
    this.signature = options.initialSignature;
    this.current = options.initial;
  }

  start(): void {
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.options.clock.clearTimeout(this.timer);
  }

  /** One look at the files; reloads when they changed. Returns whether a new set went in. */
  check(): boolean {
    const signature = tlsFilesSignature(this.options.settings);
    if (signature === this.signature) return false;
    this.signature = signature;
    const { log, settings } = this.options;
    let material: TlsMaterial;
    try {
      material = loadTlsMaterial(settings, 'NODE_TLS_RELOAD_FAILED');
    } catch (err) {
      const e = err instanceof CohortError ? err : new CohortError('NODE_TLS_RELOAD_FAILED', (err as Error).message);
      log.error({ code: e.code, file: e.details?.file }, `${e.message}; the HTTPS listeners keep the certificate they have (${this.current.fingerprint}) until the files change again`);
      return false;
    }
    for (const server of this.options.servers()) server.setSecureContext(material.context);
    log.info({ fingerprint: material.fingerprint, validTo: material.validTo, previous: this.current.fingerprint }, 'TLS certificate reloaded');
    this.current = material;
    return true;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.options.clock.setTimeout(() => {
      this.check();
      this.schedule();
    }, this.options.settings.reloadIntervalMs);
  }
}
