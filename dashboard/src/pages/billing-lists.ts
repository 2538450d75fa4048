/**
 * What the billing and team pages' lists share: money as the API writes it, the integrations'
 * names for the installation and integration ids the API answers, and paging by cursor.
 */
import { api } from '../api.ts';
import type { Configuration } from '../types.ts';
import { useLoad } from '../ui.tsx';

export const dollars = (amount: string | undefined) => (amount === undefined ? '' : `$${amount}`);
export const cents = (value: number) => `$${(value / 100).toFixed(2)}`;
/** Rows per page of a list. */
export const PAGE = 50;

export interface IntegrationNames {
  installation(id: string | null | undefined): string;
  integration(id: string): string;
}

/** The team's installations' integration names, by installation (icfg_...) and by integration id (the id itself until loaded). */
export function useIntegrationNames(): IntegrationNames {
  const loaded = useLoad(() => api.get<Configuration[]>('/v1/integrations/configurations', { query: { view: 'account' } }), []);
  const byInstallation = new Map((loaded.data ?? []).map((configuration) => [configuration.id, configuration.integration.name]));
  const byIntegration = new Map((loaded.data ?? []).map((configuration) => [configuration.integrationId, configuration.integration.name]));
  return {
    installation: (id) => (id ? (byInstallation.get(id) ?? id) : ''),
    integration: (id) => byIntegration.get(id) ?? id,
  };
}

/** Pages of a list the API answers newest first with a cursor (`next`, null on the last page). */
export interface Paged<T> {
  items: T[];
  more: boolean;
}

/**
 * Loads the first `pages` pages of a list (a reload, for rows that change, loads as many as were
 * shown), following each page's cursor.
 */
export async function loadPages<T>(
  page: (cursor: number | undefined) => Promise<{ items: T[]; next: number | null }>,
  pages: number,
): Promise<Paged<T>> {
  const items: T[] = [];
  let cursor: number | undefined;
  for (let loaded = 0; loaded < pages; loaded++) {
    const answer = await page(cursor);
    items.push(...answer.items);
    if (answer.next === null) return { items, more: false };
    cursor = answer.next;
  }
  return { items, more: true };
}

/** A date (no time) of an ISO timestamp. */
export const day = (iso: string) => new Date(iso).toLocaleDateString();
