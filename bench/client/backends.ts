import type { BackendName } from '../../web/participant/worker-protocol.ts';

/** What the client benchmark can run: a backend, 'auto' (the participant's measured choice) or 'wasm1' (WASM with threads turned off). */
export type BenchBackend = BackendName | 'auto' | 'wasm1';
export const BENCH_BACKENDS: readonly BenchBackend[] = ['webgpu', 'webgl', 'wasm', 'wasm1', 'cpu', 'auto'];
