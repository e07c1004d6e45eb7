/**
 * Special functions for the privacy accountant, in plain ES2022.
 *
 * JavaScript has log1p and expm1 but no lgamma, erfc or log-erfc, and the
 * accountant works with numbers like exp(-5000) and exp(+5000), so almost
 * everything here is done in log space. Accuracy targets (checked against
 * mpmath in test/unit/privacy-math.test.ts): lgamma to ~1e-15 relative away
 * from its roots at 1 and 2 (and ~1e-16 absolute near them); erfc to ~2e-15
 * relative; logErfc to ~1e-15 relative from x = -38 out to x = 1e150.
 */

const LOG_PI = Math.log(Math.PI);
const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);
const SQRT_PI = Math.sqrt(Math.PI);
const LN2 = Math.LN2;

// ---------------------------------------------------------------------------
// Log-space arithmetic. Zero is -Infinity.

/** log(e^a + e^b) without overflow or underflow. */
export function logAdd(a: number, b: number): number {
  const hi = Math.max(a, b);
  const lo = Math.min(a, b);
  if (lo === -Infinity || hi === Infinity) return hi;
  return hi + Math.log1p(Math.exp(lo - hi));
}

/**
 * log(1 - e^x) for x <= 0. Picks expm1 or log1p by the size of x so the
 * result keeps full relative accuracy at both ends (Mächler 2012, "log1mexp").
 */
export function log1mexp(x: number): number {
  if (x > 0 || Number.isNaN(x)) throw new RangeError(`log1mexp needs x <= 0, got ${x}`);
  if (x === 0) return -Infinity;
  return x > -LN2 ? Math.log(-Math.expm1(x)) : Math.log1p(-Math.exp(x));
}

/** log(e^a - e^b); requires a >= b (the difference must not be negative). */
export function logSub(a: number, b: number): number {
  if (b > a) throw new RangeError(`logSub: result would be negative (a = ${a}, b = ${b})`);
  if (b === -Infinity) return a;
  if (a === Infinity) return Infinity;
  if (a === b) return -Infinity;
  return a + log1mexp(b - a);
}

/** log(e^x - 1) for x >= 0, stable for tiny x (expm1) and huge x (no overflow). */
export function logExpm1(x: number): number {
  if (x < 0 || Number.isNaN(x)) throw new RangeError(`logExpm1 needs x >= 0, got ${x}`);
  if (x === Infinity) return Infinity;
  return x + log1mexp(-x);
}

/** log(sum_i e^{v_i}), shifted by the largest value so nothing overflows. */
export function logSumExp(values: readonly number[]): number {
  let max = -Infinity;
  for (const v of values) if (v > max) max = v;
  if (max === -Infinity || max === Infinity) return max;
  let sum = 0;
  for (const v of values) sum += Math.exp(v - max);
  return max + Math.log(sum);
}

// ---------------------------------------------------------------------------
// log-gamma

// zeta(k) - 1 for k = 2..30 (mpmath 1.3.0, 40 digits, rounded to double).
// They are the Taylor coefficients of lgamma around 2; see lgammaNear2.
const ZETA_MINUS_ONE: readonly number[] = [
  0.6449340668482264, 0.2020569031595943, 0.08232323371113819, 0.03692775514336993, 0.01734306198444914, 0.008349277381922827,
  0.00407735619794434, 0.0020083928260822143, 0.0009945751278180853, 0.0004941886041194645, 0.0002460865533080483, 0.00012271334757848915,
  6.124813505870483e-5, 3.058823630702049e-5, 1.528225940865187e-5, 7.637197637899763e-6, 3.81729326499984e-6, 1.908212716553939e-6,
  9.539620338727962e-7, 4.769329867878064e-7, 2.38450502727733e-7, 1.1921992596531106e-7, 5.960818905125948e-8, 2.980350351465228e-8,
  1.4901554828365043e-8, 7.45071178983543e-9, 3.725334024788457e-9, 1.862659723513049e-9, 9.313274324196682e-10,
];
const EULER_GAMMA = 0.5772156649015329;

/**
 * lgamma(2 + z) for |z| <= 0.5 by its Taylor series
 * (1 - γ) z + Σ_{k≥2} (-1)^k (ζ(k) - 1) z^k / k. Terms shrink like 4^-k, so
 * 29 terms reach double precision, and the result has full relative accuracy
 * near the root at z = 0, which the Stirling route cannot give.
 */
function lgammaNear2(z: number): number {
  let sum = 0;
  let power = -z; // (-z)^(k-1), advanced before use
  for (let k = 2; k < ZETA_MINUS_ONE.length + 2; k++) {
    power *= -z;
    sum += (ZETA_MINUS_ONE[k - 2]! * power) / k;
  }
  return (1 - EULER_GAMMA) * z + sum;
}

// Stirling correction coefficients B_2k / (2k (2k - 1)) for k = 1..8.
const STIRLING: readonly number[] = [1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156, -3617 / 122400];

/** Stirling series for x >= 10: the first omitted term is below 1e-17. */
function lgammaStirling(x: number): number {
  const inv = 1 / x;
  const inv2 = inv * inv;
  let series = 0;
  for (let k = STIRLING.length - 1; k >= 0; k--) series = series * inv2 + STIRLING[k]!;
  return (x - 0.5) * Math.log(x) - x + HALF_LOG_2PI + series * inv;
}

/** log|Γ(x)| for x > 0. */
function lgammaPositive(x: number): number {
  if (x >= 10) return lgammaStirling(x);
  if (x < 0.5) return lgammaNear2(x) - Math.log1p(x) - Math.log(x); // Γ(x) = Γ(x + 2) / (x (x + 1))
  if (x < 1.5) return lgammaNear2(x - 1) - Math.log1p(x - 1); // Γ(x) = Γ(x + 1) / x
  if (x < 2.5) return lgammaNear2(x - 2);
  // 2.5 <= x < 10: step down into [1.5, 2.5) and add back the logs of the factors.
  let product = 1;
  let y = x;
  while (y >= 2.5) {
    y -= 1;
    product *= y;
  }
  return lgammaNear2(y - 2) + Math.log(product);
}

/** sin(πx) with the argument reduced exactly, so large x keeps its accuracy. */
function sinPi(x: number): number {
  let r = x - 2 * Math.round(x / 2); // exact in binary floating point; r in [-1, 1]
  let sign = 1;
  if (r < 0) {
    r = -r;
    sign = -1;
  }
  if (r > 0.5) r = 1 - r; // sin(π(1 - r)) = sin(πr)
  return sign * Math.sin(Math.PI * r);
}

/**
 * log|Γ(x)| for any real x, like C's lgamma: +Infinity at the poles
 * (0, -1, -2, ...). Negative x goes through the reflection formula.
 */
export function lgamma(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === Infinity) return Infinity;
  if (x > 0) return lgammaPositive(x);
  if (Number.isInteger(x)) return Infinity;
  // Γ(x) Γ(1 - x) = π / sin(πx)
  return LOG_PI - Math.log(Math.abs(sinPi(x))) - lgammaPositive(1 - x);
}

/** Sign of Γ(x): +1 for x > 0; alternates between the poles for x < 0. */
export function gammaSign(x: number): 1 | -1 {
  if (x > 0) return 1;
  return Math.floor(-x) % 2 === 0 ? -1 : 1;
}

/**
 * log|C(n, k)| and the sign of C(n, k) = Γ(n+1) / (Γ(k+1) Γ(n-k+1)) for real
 * n >= 0 and integer k >= 0. For integer n and k > n the coefficient is 0
 * (logAbs = -Infinity, sign = 0). Non-integer n gives the generalised
 * coefficients that the fractional-order series needs; their sign alternates
 * once k > n + 1.
 */
export function logBinomial(n: number, k: number): { logAbs: number; sign: -1 | 0 | 1 } {
  if (!(n >= 0) || !Number.isInteger(k) || k < 0) {
    throw new RangeError(`logBinomial needs n >= 0 and integer k >= 0, got n = ${n}, k = ${k}`);
  }
  if (k === 0 || k === n) return { logAbs: 0, sign: 1 };
  const rest = n - k + 1;
  if (rest <= 0 && Number.isInteger(rest)) return { logAbs: -Infinity, sign: 0 };
  // Use the symmetric k for integer n: C(n, k) = C(n, n - k).
  const small = Number.isInteger(n) ? Math.min(k, n - k) : k;
  if (small <= 20) {
    // A short product is exact to ~20 ulp, where the lgamma difference would lose
    // digits to cancellation (lgamma(1025) is about 6078).
    let product = 1;
    for (let j = 1; j <= small; j++) product *= (n - small + j) / j;
    return { logAbs: Math.log(Math.abs(product)), sign: product < 0 ? -1 : 1 };
  }
  const logAbs = lgamma(n + 1) - lgamma(k + 1) - lgamma(rest);
  return { logAbs, sign: gammaSign(rest) };
}

// ---------------------------------------------------------------------------
// erfc and log(erfc)

/** erf(x) for |x| < 1 by its Taylor series (alternating, but |terms| < 1). */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x; // (-1)^n x^(2n+1) / n!
  let sum = x;
  for (let n = 1; n < 60; n++) {
    term *= -x2 / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / SQRT_PI) * sum;
}

/**
 * erfcx(x) = e^{x²} erfc(x) for x >= 1, from the even contraction of Laplace's
 * continued fraction
 *   erfcx(x) = (2x/√π) / (2x²+1 − 1·2/(2x²+5 − 3·4/(2x²+9 − …))),
 * evaluated backwards from a fixed depth. Backward evaluation accumulates less
 * rounding than the forward (Lentz) method: ~3e-16 relative against mpmath on
 * [1, 40], where forward Lentz drifted to ~6e-15 near x = 1. The depth
 * 12 + 110/x² has a margin over the ~95/x² that double precision needs.
 */
function erfcxContinuedFraction(x: number): number {
  // Past 1e8 the first correction, 1/(2x²), is below 1e-16 (and 2x² would lose it).
  if (x > 1e8) return 1 / (x * SQRT_PI);
  const x2 = x * x;
  const depth = Math.ceil(12 + 110 / x2);
  let f = 2 * x2 + 1 + 4 * depth;
  for (let n = depth; n >= 1; n--) f = 2 * x2 + 1 + 4 * (n - 1) - ((2 * n - 1) * (2 * n)) / f;
  return (2 * x) / (SQRT_PI * f);
}

/** Complementary error function, full relative accuracy in both tails until underflow. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 1) {
    if (x > -1) return 1 - erfSeries(x);
    return 2 - erfc(-x);
  }
  if (x > 27.3) return 0; // erfc(27.3) < 1e-325: below the smallest subnormal
  return erfcxContinuedFraction(x) * Math.exp(-x * x);
}

/**
 * log(erfc(x)) for any real x. In the far right tail (where erfc underflows)
 * it is log(erfcx(x)) − x²; in the left tail it is log(2 − erfc(|x|)) via
 * log1p, so values near log 2 stay accurate.
 */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === Infinity) return -Infinity;
  if (x <= -1) return LN2 + Math.log1p(-0.5 * erfc(-x));
  if (x < 1) return Math.log1p(-erfSeries(x)); // log1p keeps accuracy near x = 0
  return Math.log(erfcxContinuedFraction(x)) - x * x;
}
