import { useState } from 'preact/hooks';
import { messageOf, signIn, type Session } from '../api';

export function SignIn(props: { message: string | undefined; onSignedIn(s: Session): void }) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  document.title = 'Sign in · Cohort console';

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      props.onSignedIn(await signIn(user, password));
    } catch (err) {
      setError(messageOf(err));
      setBusy(false);
    }
  };

  return (
    <main class="sign-in">
      <h1>Cohort console</h1>
      {props.message && (
        <p class="banner banner-info" role="status">
          {props.message}
        </p>
      )}
      <form onSubmit={submit} aria-label="Sign in">
        <label for="user">User</label>
        <input id="user" name="user" autocomplete="username" required value={user} onInput={(e) => setUser(e.currentTarget.value)} />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}
