/** Small DOM helpers shared by the participant page's modules. */

export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  // A missing id is a bug in index.html or here: say which, instead of failing later on null.
  if (!el) throw new Error(`the page has no element #${id}`);
  return el as T;
};

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** An element with text content, for building small pieces of the page. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text?: string,
  attributes: Record<string, string> = {},
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

/** Lets the page paint between chunks of file decoding. */
export const nextFrame = () => new Promise<void>((resolve) => setTimeout(resolve, 0));
