/**
 * The dashboard's pages are paths under /dashboard/ (the server answers index.html for each):
 * a link changes the path with history.pushState, and the back button works as usual.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/dashboard';

/** The page's path below /dashboard, e.g. "/stores/store_1" ("/" for the marketplace). */
export const pagePath = () => location.pathname.slice(BASE.length) || '/';

const listeners = new Set<() => void>();

export function navigate(to: string, replace = false) {
  const url = BASE + to;
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  for (const listener of listeners) listener();
  window.scrollTo(0, 0);
}

/** The current page path, re-rendering on navigation. */
export function usePath(): string {
  const [path, setPath] = useState(pagePath());
  useEffect(() => {
    const update = () => setPath(pagePath());
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return path;
}

export function Link(props: { href: string; children: ComponentChildren; class?: string; 'aria-current'?: 'page' | undefined }) {
  const { href, children } = props;
  return (
    <a
      class={props.class}
      aria-current={props['aria-current']}
      href={BASE + href}
      onClick={(event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        navigate(href);
      }}
    >
      {children}
    </a>
  );
}

/** Matches `/stores/:id` style patterns; the named parts, or undefined. */
export function match(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i]!.startsWith(':')) params[want[i]!.slice(1)] = decodeURIComponent(got[i]!);
    else if (want[i] !== got[i]) return undefined;
  }
  return params;
}
