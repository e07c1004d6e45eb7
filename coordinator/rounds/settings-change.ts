import type { Strategy } from '../../core/aggregation/strategy.ts';
import type { RoundSettings, SettingsChange } from '../../core/protocol/status.ts';
import { maxParticipants } from '../../core/secagg/quantize.ts';

/**
 * The operator's settings changes between rounds (the dashboard): checked
 * with the rules of the command-line flags, and refused where the change
 * would make a privacy or secure-aggregation guarantee false.
 */
export function settingsProblem(change: SettingsChange, s: RoundSettings, strategy: Strategy): string | undefined {
  const positiveInt = (key: keyof SettingsChange, max: number) => {
    const v = change[key];
    if (v !== undefined && !(Number.isInteger(v) && v >= 1 && v <= max)) return `${key} must be an integer in [1, ${max}], got ${v}`;
    return undefined;
  };
  const range =
    positiveInt('clientsPerRound', 100_000) ??
    positiveInt('epochs', 1000) ??
    positiveInt('batchSize', 100_000) ??
    (change.learningRate !== undefined && !(change.learningRate > 0 && change.learningRate <= 100) ? `learningRate must be in (0, 100], got ${change.learningRate}` : undefined) ??
    // At least a second; at most a day (a timer longer than 2^31 ms would fire at once).
    (change.roundTimeoutMs !== undefined && !(change.roundTimeoutMs >= 1000 && change.roundTimeoutMs <= 86_400_000)
      ? `roundTimeoutMs must be between 1000 (1 s) and 86400000 (24 h), got ${change.roundTimeoutMs}`
      : undefined);
  if (range) return range;
  const cpr = change.clientsPerRound;
  const sampleDp = s.fit.sampleDp;
  if (cpr !== undefined && cpr !== s.clientsPerRound && cpr < s.minUpdates) {
    return `clientsPerRound (${cpr}) must be at least minUpdates (${s.minUpdates}), as --clients-per-round must be at least --min-updates`;
  }
  // The strategy's own rules (its traits): client-level DP's sampling rate, a trimmed mean's cohort size.
  const strategyProblem = strategy.settingsChangeProblem?.(change, s);
  if (strategyProblem !== undefined) return strategyProblem;
  if (cpr !== undefined && cpr !== s.clientsPerRound) {
    const secure = s.secureAggregation;
    if (secure) {
      const selected = Math.ceil(cpr * (1 + (s.overSelect ?? 0)));
      const max = maxParticipants({ clipRange: secure.clipRange, quantizationRange: secure.quantizationRange });
      if (selected > max) return `clientsPerRound ${cpr} (${selected} selected with over-selection) could overflow the mod-2^32 secure sum with quantization range ${secure.quantizationRange}: at most ${max}`;
      if (selected < 3) return `clientsPerRound ${cpr} would select ${selected} participant(s): a secure sum of fewer than three updates reveals them to each other`;
    }
  }
  if (sampleDp) {
    // DP-SGD's ε per round grows with the steps (epochs × n / B): what participants joined for must not change under them.
    if (change.epochs !== undefined && change.epochs !== s.fit.epochs) {
      return `epochs cannot change under DP-SGD: each round costs every participant epochs × n/B noisy steps of its privacy budget, and participants joined for ${s.fit.epochs}`;
    }
    if (change.batchSize !== undefined && change.batchSize !== s.fit.batchSize) {
      return `batchSize cannot change under DP-SGD: batches are Poisson-sampled at the task's expected batch size ${sampleDp.expectedBatchSize}, which sets the sampling rate the accounting uses`;
    }
  }
  return undefined;
}

/** The settings with `change` applied (from the next round on). */
export function withChange(s: RoundSettings, change: SettingsChange): RoundSettings {
  return {
    ...s,
    clientsPerRound: change.clientsPerRound ?? s.clientsPerRound,
    roundTimeoutMs: change.roundTimeoutMs ?? s.roundTimeoutMs,
    fit: {
      ...s.fit,
      epochs: change.epochs ?? s.fit.epochs,
      batchSize: change.batchSize ?? s.fit.batchSize,
      learningRate: change.learningRate ?? s.fit.learningRate,
    },
  };
}
