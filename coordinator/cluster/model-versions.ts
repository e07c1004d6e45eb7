import type { FederationStore } from './federation-store.ts';

/**
 * A member node's copy of the round's model: fetched from Redis by its
 * version once, then served from memory to every participant of the node
 * (the adapter carries versions, never model bytes). Only the latest version
 * is kept: memory stays one model whatever the number of rounds.
 */
export class ModelVersions {
  private cached: { readonly version: number; readonly weights: Promise<Float32Array> } | undefined;

  constructor(private readonly store: Pick<FederationStore, 'model'>) {}

  /** The weights of `version`; refuses a version Redis no longer holds (the federation moved on). */
  get(version: number): Promise<Float32Array> {
    if (this.cached?.version === version) return this.cached.weights;
    const weights = this.store.model(version).then((found) => {
      if (found === undefined) throw new Error(`Redis no longer holds model version ${version}: the federation moved on`);
      return found;
    });
    this.cached = { version, weights };
    // A failed fetch is not kept: the next ask tries Redis again.
    weights.catch(() => {
      if (this.cached?.weights === weights) this.cached = undefined;
    });
    return weights;
  }
}
