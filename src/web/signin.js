// The sign-in page. The server sets an HttpOnly cookie; the page never sees a token.
import { h, clear, alertBox, field } from './dom.js';
import { CSRF_HEADER, errorOf } from './api.js';

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
  return h('section', { class: 'card narrow' },
    h('h1', { id: 'signin-title', text: 'Sign in to Coffer' }),
    message ? h('p', { class: 'notice', role: 'status', text: message }) : null,
    form);
}
