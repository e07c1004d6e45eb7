import type { ArchitectureName } from '../protocol/messages.ts';

/** A built-in architecture's name (architectures.ts builds them; this check needs no tfjs). */
export function isArchitecture(name: string): name is ArchitectureName {
  return name === 'mlp' || name === '2nn' || name === 'cnn';
}
