// The sign-in page. The server sets an HttpOnly cookie; the page never sees a token.
import { h, clear, alertBox, field } from './dom.js';
import { api, CSRF_HEADER, errorOf } from './api.js';

export function signInPage(message, signedIn) {
  const problem = h('div');
  const username = field('Username', { name: 'username', autocomplete: 'username', required: true });
  const password = field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const button = h('button', { type: 'submit', class: 'primary', text: 'Sign in' });
  const form = h('form', { class: 'stack', 'aria-labelledby': 'signin-title' }, username, password, problem, button);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clear(problem);
    button.disabled = true;
    try {
      const response = await fetch('/api/v1/auth/session', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', [CSRF_HEADER]: '1' },
        body: JSON.stringify({ username: form.username.value, password: form.password.value }),
      });
      if (!response.ok) {
        let body = null;
        try { body = await response.json(); } catch { body = null; }
        throw errorOf(response.status, body, response.headers.get('Retry-After'));
      }
      await signedIn();
    } catch (err) {
      clear(problem, alertBox(err.message || 'Signing in failed.'));
      form.password.focus();
    } finally {
      button.disabled = false;
    }
  });
  // One button per OpenID Connect provider: plain links, since signing in there is a
  // navigation. The password form stays for break-glass admins when password sign-in is off.
  const providers = h('div', { class: 'stack' });
  providers.hidden = true;
  fetch('/api/v1/auth/providers', { credentials: 'same-origin' })
    .then((response) => (response.ok ? response.json() : null))
    .then((options) => {
      if (!options || !options.providers.length) return;
      clear(providers, options.providers.map((provider) => h('a', {
        class: 'button primary', href: provider.sign_in_url, text: `Sign in with ${provider.label}`,
      })), h('p', { text: options.password_login ? 'Or with your password:' : 'Administrators only:' }));
      providers.hidden = false;
    })
    .catch(() => {});
  return h('section', { class: 'card narrow' },
    h('h1', { id: 'signin-title', text: 'Sign in to Coffer' }),
    message ? h('p', { class: 'notice', role: 'status', text: message }) : null,
    providers,
    form);
}

// The page a password-reset mail links to: the token comes after `#`, so it never reaches a
// server log or a Referer; it is taken off the address at once and kept only in memory.
export function resetPasswordPage(token, done) {
  const problem = h('div');
  const password = field('New password', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10 });
  const again = field('The same again', { name: 'again', type: 'password', autocomplete: 'new-password', required: true });
  const button = h('button', { type: 'submit', class: 'primary', text: 'Set the password' });
  const form = h('form', { class: 'stack', 'aria-labelledby': 'reset-title' }, password, again, problem, button);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clear(problem);
    if (form.password.value !== form.again.value) {
      clear(problem, alertBox('The two passwords differ.'));
      return;
    }
    button.disabled = true;
    try {
      await api('POST', '/auth/password-reset/confirm', { token, new_password: form.password.value }, { signedOutOn401: false });
      await done();
    } catch (err) {
      clear(problem, alertBox(err.code === 'invalid_token'
        ? 'This link has been used or has expired. Ask for a new one.'
        : err.message || 'Setting the password failed.'));
    } finally {
      button.disabled = false;
    }
  });
  return h('section', { class: 'card narrow' },
    h('h1', { id: 'reset-title', text: 'Choose a new password' }),
    token ? form : alertBox('This link is incomplete. Open the whole link from the mail.'));
}
