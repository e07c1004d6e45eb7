import type { FitConfig } from '../protocol/messages.ts';
import { FedAvg } from './fedavg.ts';
import type { Strategy } from './strategy.ts';
import { StrategyWrapper } from './wrapper.ts';

export interface FedProxOptions {
  /** μ > 0: weight of the proximal term (μ/2)·‖w − w_global‖² in every participant's local loss. */
  readonly proximalMu: number;
  /** The server-side aggregation; FedAvg by default (FedProx changes only local training). */
  readonly base?: Strategy;
}

/**
 * FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous
 * Networks"): on the server it is its base aggregation (FedAvg); what changes
 * is the fit configuration, which asks every participant to add the
 * proximal term (μ/2)·‖w − w_global‖² to its local loss, limiting how far
 * local training drifts from the global model on heterogeneous data.
 */
export class FedProx extends StrategyWrapper {
  readonly name: string;
  readonly proximalMu: number;

  constructor(options: FedProxOptions) {
    super(options.base ?? new FedAvg());
    const mu = options.proximalMu;
    if (!(mu > 0) || !Number.isFinite(mu)) throw new RangeError(`proximalMu must be positive and finite, got ${mu}`);
    this.proximalMu = mu;
    this.name = this.inner instanceof FedAvg ? `fedprox (μ=${mu})` : `fedprox (μ=${mu}) over ${this.inner.name}`;
  }

  override configureFit(round: number, base: FitConfig): FitConfig {
    return { ...this.inner.configureFit(round, base), proximalMu: this.proximalMu };
  }
}
