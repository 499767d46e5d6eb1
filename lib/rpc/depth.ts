// How deep a parsed JSON value nests, measured without recursion. JSON.parse takes any depth, but
// JSON.stringify (and any other recursive walk) overflows the stack a few thousand levels down:
// a value the server will serialise again (tools, a schema) is checked against a bound first, so
// it is refused as a client mistake instead of failing as a server fault.

/** Arrays and objects nested in each other at most this deep are accepted (the value itself is level 1). */
export const MAX_NESTING_DEPTH = 64;

/**
 * The path (keys and indexes from `value`) of the first array or object nested deeper than
 * `limit` levels, or undefined when none is. Each container is visited once.
 */
export function pathTooDeep(value: unknown, limit: number = MAX_NESTING_DEPTH): (string | number)[] | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  interface Visit {
    readonly node: object;
    readonly depth: number;
    readonly key: string | number | undefined;
    readonly parent: Visit | undefined;
  }
  const pending: Visit[] = [{ node: value, depth: 1, key: undefined, parent: undefined }];
  for (let visit = pending.pop(); visit !== undefined; visit = pending.pop()) {
    if (visit.depth > limit) {
      const path: (string | number)[] = [];
      for (let step: Visit | undefined = visit; step?.key !== undefined; step = step.parent) path.unshift(step.key);
      return path;
    }
    const depth = visit.depth + 1;
    if (Array.isArray(visit.node)) {
      const items: unknown[] = visit.node;
      for (let index = 0; index < items.length; index++) {
        const child = items[index];
        if (typeof child === 'object' && child !== null) pending.push({ node: child, depth, key: index, parent: visit });
      }
    } else {
      for (const key of Object.keys(visit.node)) {
        const child: unknown = (visit.node as Record<string, unknown>)[key];
        if (typeof child === 'object' && child !== null) pending.push({ node: child, depth, key, parent: visit });
      }
    }
  }
  return undefined;
}
