// Owns evaluating a Kubernetes label selector (matchLabels and matchExpressions, as the API server
// evaluates a webhook's namespaceSelector and objectSelector) against a set of labels. Pure.
import type { V1LabelSelector } from '@kubernetes/client-node';

/** True when `selector` selects an object with `labels`; an absent or empty selector selects everything. */
export function selects(selector: V1LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (selector === undefined) return true;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  return (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
    const value = labels[key];
    switch (operator) {
      case 'In':
        return value !== undefined && values.includes(value);
      case 'NotIn':
        return value === undefined || !values.includes(value);
      case 'Exists':
        return value !== undefined;
      case 'DoesNotExist':
        return value === undefined;
      default:
        return false; // the API server refuses unknown operators; select nothing
    }
  });
}
