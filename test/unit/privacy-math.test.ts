import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { erfc, lgamma, log1mexp, logAdd, logBinomial, logErfc, logExpm1, logSub, logSumExp } from '../../core/privacy/math.ts';

/**
 * Reference values: mpmath 1.3.0 at 50 significant digits (loggamma, erfc,
 * log(erfc), binomial), evaluated at the exact double the test passes in and
 * rounded to the nearest double. None of them comes from the code under test.
 */

function assertClose(actual: number, expected: number, rel: number, abs = 0, what = ''): void {
  const err = Math.abs(actual - expected);
  assert.ok(
    err <= rel * Math.abs(expected) + abs,
    `${what}: got ${actual}, expected ${expected} (error ${err}, allowed ${rel} rel + ${abs} abs)`,
  );
}

// [x, ln|Γ(x)|]
const LGAMMA: readonly (readonly [number, number])[] = [
  [1e-300, 690.7755278982137],
  [1e-10, 23.025850929882736],
  [0.001, 6.907178885383853],
  [0.1, 2.252712651734206],
  [0.5, 0.5723649429247001], // ln √π
  [0.9, 0.06637623973474295],
  [0.999999, 5.772164873855652e-7], // near the root at 1: relative accuracy still holds
  [1.000001, -5.772148423874147e-7],
  [1.5, -0.12078223763524522],
  [1.99, -0.004195529088791668],
  [2.01, 0.004260022907098346],
  [2.5, 0.2846828704729192],
  [3.7, 1.428072326665388],
  [7.7, 7.926541356269005],
  [9.99, 12.779315214350193],
  [10, 12.801827480081469], // ln 9!
  [12.3, 18.238983407092245],
  [50.5, 146.51925549072064],
  [100, 359.1342053695754], // ln 99!
  [171.5, 709.1431630309282],
  [1025, 6078.211884750051], // ln 1024!
  [1e5, 1051287.7089736569],
  [1e10, 220258509288.81058],
  [1e300, 6.897755278982137e302],
  [-0.5, 1.2655121234846454], // ln(2√π)
  [-2.5, -0.056243716497674054],
  [-10.3, -14.457515440024208],
  [-100.7, -365.61225576180533],
];

const ERFC: readonly (readonly [number, number])[] = [
  [-5, 1.9999999999984626],
  [-1.5, 1.9661051464753108],
  [-1, 1.8427007929497148],
  [-0.5, 1.5204998778130465],
  [-1e-5, 1.0000112837916706],
  [0, 1],
  [1e-8, 0.9999999887162083],
  [0.3, 0.6713732405408726],
  [0.5, 0.4795001221869535],
  [0.9, 0.20309178757716786],
  [0.999, 0.15771472979350307],
  [1, 0.15729920705028513], // where the implementation switches from the series to the continued fraction
  [1.0001, 0.1572577004514797],
  [1.5, 0.033894853524689274],
  [2, 0.004677734981047266],
  [3, 2.209049699858544e-5],
  [5, 1.537459794428035e-12],
  [10, 2.088487583762545e-45],
  [26, 5.663192408856143e-296],
];

const LOG_ERFC: readonly (readonly [number, number])[] = [
  [-30, Math.LN2],
  [-5, 0.6931471805591766],
  [-1, 0.6112323176780705],
  [-0.5, 0.41903914777555956],
  [-1e-5, 1.1283728009080662e-5], // ≈ 2x/√π: needs log1p, not log(1 + …)
  [1e-8, -1.1283791734617103e-8],
  [0.3, -0.39843005144008525],
  [0.999, -1.8469673854846986],
  [1, -1.8496055099332482],
  [1.5, -3.3844920895515527],
  [3, -10.720363041981113],
  [10, -102.87988902484489],
  [27, -732.8688865078974], // erfc itself underflows from here on
  [30, -903.9741171106439],
  [100, -10005.177585122665],
  [1e4, -100000009.78270532],
  [1e8, -1.0000000000000018e16],
  [1e9, -1e18],
  [1e150, -9.999999999999999e299],
];

// [n, k, ln|C(n, k)|, sign]
const LOG_BINOMIAL: readonly (readonly [number, number, number, number])[] = [
  [1024, 512, 706.0909414973534, 1],
  [1024, 3, 18.999723873086673, 1],
  [1024, 1021, 18.999723873086673, 1],
  [63, 31, 41.35913338985118, 1],
  [2.5, 3, -1.1631508098056809, 1],
  [2.5, 4, -3.242592351485517, -1],
  [1.1, 50, -10.465549447427984, 1],
  [256.1, 300, -128.25700960774034, -1],
  [10.9, 5, 6.0782412514078805, 1],
];

describe('log-space arithmetic', () => {
  it('logAdd adds without overflow and treats -Infinity as zero', () => {
    assertClose(logAdd(Math.log(2), Math.log(3)), Math.log(5), 1e-15, 0, 'ln(2 + 3)');
    assertClose(logAdd(1000, 1000), 1000 + Math.LN2, 1e-15, 0, 'e^1000 + e^1000');
    assert.equal(logAdd(-Infinity, 7), 7);
    assert.equal(logAdd(-Infinity, -Infinity), -Infinity);
    assert.equal(logAdd(Infinity, 3), Infinity);
    assertClose(logAdd(0, -40), 4.248354255291589e-18, 1e-15, 0, 'ln(1 + e^-40)');
  });

  it('logSub subtracts, returns -Infinity for equal arguments, and refuses negative results', () => {
    assertClose(logSub(Math.log(5), Math.log(3)), Math.log(2), 1e-15, 0, 'ln(5 - 3)');
    assertClose(logSub(1e-10, 0), Math.log(1e-10) + 5e-11, 1e-15, 0, 'ln(e^1e-10 - 1)'); // needs expm1
    assert.equal(logSub(3, 3), -Infinity);
    assert.equal(logSub(3, -Infinity), 3);
    assert.throws(() => logSub(1, 2), RangeError);
  });

  it('log1mexp and logExpm1 keep relative accuracy at both ends', () => {
    assertClose(log1mexp(-1e-20), Math.log(1e-20), 1e-15, 0, 'ln(1 - e^-1e-20)');
    assertClose(log1mexp(-50), -1.9287498479639178e-22, 1e-15, 0, 'ln(1 - e^-50)');
    assert.equal(log1mexp(0), -Infinity);
    assert.throws(() => log1mexp(1), RangeError);
    assertClose(logExpm1(1e-12), Math.log(1e-12) + 5e-13, 1e-15, 0, 'ln(e^1e-12 - 1)');
    assertClose(logExpm1(1000), 1000, 1e-15, 0, 'ln(e^1000 - 1)');
    assert.equal(logExpm1(0), -Infinity);
  });

  it('logSumExp matches a direct sum and survives huge arguments', () => {
    assertClose(logSumExp([0, Math.log(2), Math.log(3)]), Math.log(6), 1e-15, 0, 'ln 6');
    assertClose(logSumExp([5000, 5000, 5000]), 5000 + Math.log(3), 1e-15, 0, '3 e^5000');
    assert.equal(logSumExp([]), -Infinity);
  });
});

describe('lgamma', () => {
  it('matches mpmath to 1e-14 relative (1e-16 absolute near the roots at 1 and 2)', () => {
    for (const [x, expected] of LGAMMA) assertClose(lgamma(x), expected, 1e-14, 1e-16, `lgamma(${x})`);
  });

  it('is exact at 1 and 2, infinite at the poles', () => {
    assert.equal(lgamma(1), 0);
    assert.equal(lgamma(2), 0);
    assert.equal(lgamma(0), Infinity);
    assert.equal(lgamma(-3), Infinity);
  });

  it('agrees with ln((n-1)!) computed by exact integer products', () => {
    let factorial = 1; // exact in doubles up to 22!
    for (let n = 1; n <= 22; n++) {
      factorial *= n;
      assertClose(lgamma(n + 1), Math.log(factorial), 1e-15, 1e-16, `lgamma(${n + 1})`);
    }
  });
});

describe('logBinomial', () => {
  it('matches mpmath, including generalised coefficients and their signs', () => {
    for (const [n, k, expected, sign] of LOG_BINOMIAL) {
      const { logAbs, sign: s } = logBinomial(n, k);
      assertClose(logAbs, expected, 1e-14, 1e-15, `ln|C(${n}, ${k})|`);
      assert.equal(s, sign, `sign of C(${n}, ${k})`);
    }
    // Far out the lgamma differences cancel a little; still ~1e-11.
    const far = logBinomial(0.5, 1_000_000);
    assertClose(far.logAbs, -21.98877758543093, 1e-10, 0, 'ln|C(0.5, 1e6)|');
    assert.equal(far.sign, -1);
  });

  it('is zero (-Infinity) past n for integer n, and 1 at the ends', () => {
    assert.deepEqual(logBinomial(5, 7), { logAbs: -Infinity, sign: 0 });
    assert.deepEqual(logBinomial(7, 0), { logAbs: 0, sign: 1 });
    assert.deepEqual(logBinomial(7, 7), { logAbs: 0, sign: 1 });
    assert.throws(() => logBinomial(5, 1.5), RangeError);
  });
});

describe('erfc and logErfc', () => {
  it('erfc matches mpmath to 1e-14 relative on both sides of zero', () => {
    for (const [x, expected] of ERFC) assertClose(erfc(x), expected, 1e-14, 0, `erfc(${x})`);
    assert.equal(erfc(30), 0); // underflow
    assert.equal(erfc(-30), 2);
  });

  it('logErfc matches mpmath to 1e-14 relative, including the far tail where erfc underflows', () => {
    for (const [x, expected] of LOG_ERFC) assertClose(logErfc(x), expected, 1e-14, 0, `logErfc(${x})`);
    assert.equal(Math.abs(logErfc(0)), 0); // (-0 from log1p(-0) is fine)
    assert.equal(logErfc(Infinity), -Infinity);
    assert.equal(logErfc(-Infinity), Math.LN2);
  });

  it('logErfc agrees with ln(erfc) where erfc is representable, and is decreasing', () => {
    let previous = Infinity;
    for (let x = -6; x <= 26; x += 0.37) {
      const value = logErfc(x);
      assertClose(value, Math.log(erfc(x)), 1e-14, 1e-16, `logErfc(${x})`);
      assert.ok(value < previous, `logErfc not decreasing at ${x}`);
      previous = value;
    }
  });
});
