/**
 * The web console: sign-in, then one page per concern, all fed by the admin API of the node
 * that serves it. The cluster view comes live from GET /admin/v1/events (server-sent events)
 * and is shared by every page (it also says whether this node is the replica: read-only).
 */
import { render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, currentSession, setSessionHandlers, type ClusterView, type Session } from './api';
import { navigate, usePath } from './router';
import { SignIn } from './pages/SignIn';
import { Cluster } from './pages/Cluster';
import { Configuration } from './pages/Configuration';
import { Apis } from './pages/Apis';
import { ApiKeys } from './pages/ApiKeys';
import { Schedules } from './pages/Schedules';
import { Replica } from './pages/Replica';
import { WEB_PAGES, type WebPagePath } from '../../src/console/web-routes';
import './styles.css';

export interface PageProps {
  session: Session;
  view: ClusterView | undefined;
  /** Why changes are not possible here (auditor, replica), or undefined. */
  readOnly: string | undefined;
}

const NAV: Array<[WebPagePath, string]> = [
  ['/cluster', 'Cluster'],
  ['/configuration', 'Configuration'],
  ['/apis', 'APIs'],
  ['/api-keys', 'API keys'],
  ['/schedules', 'Schedules'],
  ['/replica', 'Replica'],
];

/** The page a signed-out visitor asked for, opened after sign-in. */
let returnTo: string | undefined;

const ENDED = 'Your session has ended (it expired or was signed out). Please sign in again.';
const SIGNED_OUT = 'You have signed out.';

function App() {
  const path = usePath();
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [message, setMessage] = useState<string | undefined>(undefined);
  const [view, setView] = useState<ClusterView | undefined>(undefined);
  const [live, setLive] = useState<'connecting' | 'live' | 'lost'>('connecting');

  // Set while this page signs out: the session then ends twice over, by the logout's answer and
  // by the event stream's `signed-out` (which can come after the answer when the page renders
  // late), and the page says "signed out" whichever comes last.
  const signingOut = useRef(false);

  const ended = useCallback((why: string) => {
    setSession(null);
    setView(undefined);
    setMessage(signingOut.current ? SIGNED_OUT : why);
    setSessionHandlers(undefined, () => {});
    navigate('/sign-in', true);
  }, []);

  const accept = useCallback((s: Session) => {
    signingOut.current = false;
    setSessionHandlers(s.csrfToken, () => ended(ENDED));
    setMessage(undefined);
    setSession(s);
  }, [ended]);

  // Is there a session already (the cookie of an earlier sign-in)?
  useEffect(() => {
    currentSession().then(
      (s) => (s ? accept(s) : setSession(null)),
      () => {
        setSession(null);
        setMessage('The console does not answer; try again in a moment.');
      },
    );
  }, [accept]);

  // The live cluster view while signed in.
  useEffect(() => {
    if (!session) return;
    let source: EventSource | undefined;
    let retry: number | undefined;
    let closed = false;
    const open = (): void => {
      source = new EventSource('/admin/v1/events');
      source.addEventListener('open', () => setLive('live'));
      source.addEventListener('cluster', (e) => {
        setLive('live');
        setView(JSON.parse((e as MessageEvent<string>).data) as ClusterView);
      });
      source.addEventListener('signed-out', () => {
        closed = true;
        source?.close();
        ended(ENDED);
      });
      source.addEventListener('error', () => {
        if (closed) return;
        setLive('lost');
        // The browser retries by itself while the stream is merely cut; a refused stream
        // (401: the session ended meanwhile) is closed for good: ask whether the session still holds.
        currentSession().then(
          (s) => {
            if (closed) return;
            if (!s) {
              closed = true;
              source?.close();
              ended(ENDED);
            } else if (source?.readyState === EventSource.CLOSED) {
              retry = window.setTimeout(open, 1000);
            }
          },
          () => {
            if (!closed && source?.readyState === EventSource.CLOSED) retry = window.setTimeout(open, 1000);
          },
        );
      });
    };
    open();
    return () => {
      closed = true;
      window.clearTimeout(retry);
      source?.close();
    };
  }, [session, ended]);

  // Signed in on the sign-in page (a reload, the back button): go to the cluster page.
  // Signed out anywhere else: the sign-in page, coming back to this page afterwards.
  useEffect(() => {
    if (session && path === '/sign-in') navigate('/cluster', true);
    if (session === null && path !== '/sign-in') {
      if (path !== '/') returnTo = path;
      navigate('/sign-in', true);
    }
  }, [session, path]);

  if (session === undefined) return <p class="loading">Loading…</p>;
  if (session === null) {
    return (
      <SignIn
        message={message}
        onSignedIn={(s) => {
          accept(s);
          navigate(returnTo ?? '/cluster', true);
          returnTo = undefined;
        }}
      />
    );
  }

  const signOut = async (): Promise<void> => {
    signingOut.current = true;
    try {
      await api('POST', '/admin/v1/logout');
    } finally {
      ended(SIGNED_OUT);
    }
  };

  const readOnly =
    view && view.role !== 'console'
      ? `This node is the ${view.role === 'demoted' ? 'demoted console' : 'replica'}: the console is read-only here.`
      : session.role !== 'admin'
        ? `You are signed in as an ${session.role}: everything is read-only.`
        : undefined;
  const props: PageProps = { session, view, readOnly };
  const page = (path in WEB_PAGES && path !== '/sign-in' ? path : '/cluster') as WebPagePath;
  const title = WEB_PAGES[page === '/' ? '/cluster' : page];
  document.title = `${title} · Cohort console`;

  return (
    <div class="shell">
      <header class="top">
        <span class="brand">Cohort console</span>
        {view && <span class="cluster-id">cluster {view.clusterId}</span>}
        <span class={`live live-${live}`} role="status">{live === 'live' ? 'live' : live === 'lost' ? 'connection lost, retrying…' : 'connecting…'}</span>
        <span class="who">
          {session.user} ({session.role})
        </span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </header>
      <nav aria-label="Pages">
        <ul>
          {NAV.map(([href, label]) => (
            <li key={href}>
              <a
                href={href}
                aria-current={page === href || (page === '/' && href === '/cluster') ? 'page' : undefined}
                onClick={(e) => {
                  e.preventDefault();
                  navigate(href);
                }}
              >
                {label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main>
        {readOnly && (
          <p class="banner banner-info" role="status">
            {readOnly}
          </p>
        )}
        {page === '/configuration' ? (
          <Configuration {...props} />
        ) : page === '/apis' ? (
          <Apis {...props} />
        ) : page === '/api-keys' ? (
          <ApiKeys {...props} />
        ) : page === '/schedules' ? (
          <Schedules {...props} />
        ) : page === '/replica' ? (
          <Replica {...props} />
        ) : (
          <Cluster {...props} />
        )}
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);
