/** Secure aggregation (SecAgg / SecAgg+) for browser and Node participants: see protocol.ts for the steps. */
export { SecAggAbortError, SecAggError, type SecAggErrorCode } from './errors.ts';
export { buildNeighbourGraph, connectedAmong, effectiveDegree, suggestedDegree, ROUND_SEED_BYTES, type NeighbourGraph } from './graph.ts';
export { checkPrgTestVector, expandSeed, PRG_TEST_VECTOR } from './prg.ts';
export {
  DEFAULT_QUANTIZATION,
  dequantizeSum,
  maxParticipants,
  quantizationStep,
  quantize,
  sumErrorBound,
  validateQuantization,
  type QuantizationConfig,
} from './quantize.ts';
export {
  recommendedThreshold,
  SecAggClient,
  SecAggServer,
  SHARE_CIPHERTEXT_BYTES,
  validateConfig,
  type AdvertiseKeysMessage,
  type ClientPhase,
  type ForwardedSharesMessage,
  type KeyDirectoryMessage,
  type MaskedInputMessage,
  type MaskInputOptions,
  type OwnedShare,
  type SecAggConfig,
  type SecAggResult,
  type ServerPhase,
  type ShareKeysMessage,
  type ShareKind,
  type UnmaskRequestMessage,
  type UnmaskResponseMessage,
} from './protocol.ts';
export { payloadBytes, runLocalRound, type Dropouts, type LocalRound } from './simulate.ts';
