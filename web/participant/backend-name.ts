/**
 * The tfjs backends a participant can train on. A file of its own so that
 * backend.ts and backend-cache.ts need not import worker-protocol.ts, which
 * imports backend.ts (for the choice it reports).
 */
export const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
