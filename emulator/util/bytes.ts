/**
 * Byte arrays in pieces (a message that wraps a ring, a payload that came in
 * several socket reads, an engine's IV | ciphertext | tag): their length,
 * and the pieces in one array when something needs them so.
 */

export function byteLength(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

/** The pieces in one array: the piece itself when there is one, a copy otherwise. */
export function joinBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(byteLength(parts));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
