import type { UpdateCompression } from '../../core/protocol/messages.ts';
import type { RoundSettings } from '../../core/protocol/status.ts';
import type { UniformSource } from '../../core/random/prng.ts';

/**
 * The update encoding a plain round asks for (FitConfig.compression), or
 * undefined for float32. int4 gets a fresh rotation seed every round, so no
 * rotation is reused across rounds; the seed is public (core/math/hadamard.ts:
 * nothing rests on its secrecy). Secure rounds encode their own way (core/secagg).
 */
export function roundCompression(settings: RoundSettings, random: UniformSource): UpdateCompression | undefined {
  const encoding = settings.updateEncoding;
  if (encoding === undefined || encoding === 'float32' || settings.secureAggregation) return undefined;
  if (encoding !== 'int4') return { encoding };
  return { encoding, rotationSeed: Math.floor(random.next() * 4294967296) >>> 0 };
}
