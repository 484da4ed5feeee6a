/**
 * Randomness as an injected function, so the simulator can replay a run from its seed.
 * Production code gets `Math.random`; the simulator gets `seededRandom(seed)`.
 */
export type Random = () => number;

/**
 * sfc32 seeded by splitmix32 from one 32-bit seed: small, fast and well distributed, which is
 * all the simulator and probe-order shuffling need (nothing here is used for secrets).
 */
export function seededRandom(seed: number): Random {
  let s = seed >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  return () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
}

/** Fisher-Yates shuffle in place. */
export function shuffle<T>(items: T[], random: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** Up to `k` distinct items chosen at random, excluding those `exclude` says no to. */
export function pickRandom<T>(items: readonly T[], k: number, random: Random, exclude: (item: T) => boolean = () => false): T[] {
  const candidates = items.filter((i) => !exclude(i));
  if (candidates.length <= k) return shuffle(candidates, random);
  // Partial Fisher-Yates: only the first k positions need to be settled.
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (candidates.length - i));
    [candidates[i], candidates[j]] = [candidates[j]!, candidates[i]!];
  }
  return candidates.slice(0, k);
}
