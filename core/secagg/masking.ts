import { SecAggError } from './errors.ts';
import { forEachPrgChunk } from './prg.ts';

/**
 * Masks in Z_{2^32}. A participant u sends
 *   y_u = x_u + PRG(b_u) + Σ_{v ∈ N(u) ∩ U2} sign(u, v) · PRG(s_uv)   (mod 2^32)
 * with sign(u, v) = +1 if u < v and −1 if u > v, so the pair's two masks
 * cancel in the sum. The server removes PRG(b_u) of every survivor and, for a
 * participant d that dropped after sharing its keys, sign(v, d) · PRG(s_vd)
 * from each neighbour v that did send.
 *
 * All arithmetic is uint32 addition `(a + b) >>> 0` and subtraction
 * `(a − b) >>> 0`: the intermediate is below 2^33 in magnitude, exact in a
 * double, and `>>> 0` reduces it mod 2^32.
 */

export type MaskSign = 1 | -1;

/** +1 for the lower index, −1 for the higher: the two masks of a pair cancel. */
export function pairwiseSign(self: number, other: number): MaskSign {
  if (self === other) throw new SecAggError('inconsistent', 'a participant has no pairwise mask with itself');
  return self < other ? 1 : -1;
}

/** target += sign · PRG(seed), elementwise mod 2^32, in place, one PRG chunk at a time. */
export async function applyMask(target: Uint32Array, seed: Uint8Array, sign: MaskSign): Promise<void> {
  await forEachPrgChunk(seed, target.length, (chunk, offset) => {
    if (sign === 1) for (let i = 0; i < chunk.length; i++) target[offset + i] = (target[offset + i]! + chunk[i]!) >>> 0;
    else for (let i = 0; i < chunk.length; i++) target[offset + i] = (target[offset + i]! - chunk[i]!) >>> 0;
  });
}
