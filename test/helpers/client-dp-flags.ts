/**
 * The flags of client-level DP with distributed noise at z = 1, sampling
 * rate 1 and clip 1, for `expectedClients` contributors: the setting the
 * option and secure-aggregation tests start from.
 */
export function distributedClientDp(expectedClients: number): string[] {
  return [
    '--client-dp',
    'distributed',
    '--client-noise-multiplier',
    '1',
    '--client-sample-rate',
    '1',
    '--client-clip',
    '1',
    '--expected-clients',
    String(expectedClients),
  ];
}
