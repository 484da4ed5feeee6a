/** Small pieces several pages use. */
import type { ComponentChildren } from 'preact';

/** Health as colour and word: the colour is never the only sign. */
export function Health({ health }: { health: 'green' | 'yellow' | 'red' | null }) {
  if (!health) return <span class="health health-none">—</span>;
  return (
    <span class={`health health-${health}`} data-health={health}>
      <span class="dot" aria-hidden="true" />
      {health}
    </span>
  );
}

export function When({ at }: { at: string | null | undefined }) {
  if (!at) return <span>—</span>;
  return <time dateTime={at}>{new Date(at).toLocaleString()}</time>;
}

export function ErrorText({ error }: { error: string | undefined }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error}
    </p>
  );
}

export function Notice({ children }: { children: ComponentChildren }) {
  return (
    <p class="banner banner-ok" role="status">
      {children}
    </p>
  );
}
