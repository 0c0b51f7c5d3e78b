// The account page: password, sessions (with revoke), personal API tokens (shown once).
import { h, clear, formatDate, announce, alertBox, confirmDialog, field } from './dom.js';
import { api } from './api.js';

export async function accountPage(main, rest, app) {
  document.title = 'Account · Coffer';
  const problem = h('div');
  const guard = (action) => async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    clear(problem);
    try { await action(event); } catch (err) { clear(problem, alertBox(err.message)); }
  };

  const passwordDone = h('div', { 'aria-live': 'polite' });
  const passwordForm = h('form', { class: 'stack' },
    field('Current password', { name: 'current', type: 'password', autocomplete: 'current-password', required: true }),
    field('New password (at least 10 characters)', { name: 'next', type: 'password', autocomplete: 'new-password', minlength: 10, required: true }),
    passwordDone, h('button', { type: 'submit', class: 'primary', text: 'Change password' }));
  passwordForm.addEventListener('submit', guard(async () => {
    await api('PUT', '/me/password', { current_password: passwordForm.current.value, new_password: passwordForm.next.value });
    passwordForm.reset();
    clear(passwordDone, h('p', { class: 'notice', text: 'Password changed. Your other sessions have ended.' }));
    await loadSessions();
  }));

  const sessions = h('tbody');
  const loadSessions = guard(async () => {
    const list = await api('GET', '/me/sessions');
    clear(sessions, list.map((session) => h('tr', {},
      h('td', { text: formatDate(session.created_at) }),
      h('td', { text: formatDate(session.last_used_at) }),
      h('td', { text: session.client_ip }),
      h('td', { text: session.method === 'password' ? 'Password' : session.method.replace(/^oidc:/, 'Provider ') }),
      h('td', {}, session.current ? h('strong', { text: 'This browser' })
        : h('button', { type: 'button', class: 'small danger', 'aria-label': `End the session started ${formatDate(session.created_at)}`, text: 'End',
          onclick: guard(async () => { await api('DELETE', `/me/sessions/${session.id}`); announce('Session ended'); await loadSessions(); }) })))));
  });

  const tokens = h('tbody');
  const secret = h('div', { 'aria-live': 'polite' });
  const loadTokens = guard(async () => {
    const list = await api('GET', '/me/tokens');
    clear(tokens, list.length ? list.map((token) => h('tr', {},
      h('td', { text: token.name }), h('td', { text: token.scope }),
      h('td', { text: formatDate(token.expires_at) }), h('td', { text: formatDate(token.last_used_at) }),
      h('td', {}, h('button', { type: 'button', class: 'small danger', 'aria-label': `Revoke the token ${token.name}`, text: 'Revoke',
        onclick: guard(async () => {
          if (!(await confirmDialog(`Revoke ${token.name}`, 'Programs using this token lose access at once.', 'Revoke'))) return;
          await api('DELETE', `/me/tokens/${token.id}`);
          await loadTokens();
        }) }))))
      : h('tr', {}, h('td', { colspan: 5, class: 'empty', text: 'No API tokens.' })));
  });
  const scope = h('select', { id: 'token-scope' }, h('option', { value: 'read-only', text: 'Read only' }), h('option', { value: 'read-write', text: 'Read and write' }));
  const tokenForm = h('form', { class: 'stack' },
    field('What is it for?', { name: 'name', required: true, autocomplete: 'off' }),
    h('div', { class: 'field' }, h('label', { for: 'token-scope', text: 'Access' }), scope),
    field('Expires after days (optional)', { name: 'days', type: 'number', min: 1 }),
    h('button', { type: 'submit', text: 'Make a token' }), secret);
  tokenForm.addEventListener('submit', guard(async () => {
    const body = { name: tokenForm.name.value, scope: scope.value };
    if (tokenForm.days.value) body.expires_in_days = Number(tokenForm.days.value);
    const made = await api('POST', '/me/tokens', body);
    tokenForm.reset();
    clear(secret, h('div', { class: 'notice' }, h('p', { text: 'Copy the token now: it is shown only once.' }),
      h('label', { for: 'token-secret', text: 'Token' }), h('input', { id: 'token-secret', readonly: true, value: made.token })));
    await loadTokens();
  }));

  // Sign-in providers: link (password confirmed, then off to the provider) or unlink.
  const identities = h('tbody');
  const loadIdentities = guard(async () => {
    const [options, linked] = await Promise.all([api('GET', '/auth/providers'), api('GET', '/me/identities')]);
    clear(identities, options.providers.length ? options.providers.map((provider) => {
      const identity = linked.find((one) => one.provider === provider.id);
      const action = identity
        ? h('button', { type: 'button', class: 'small danger', text: 'Unlink', 'aria-label': `Unlink ${provider.label}`,
          onclick: guard(async () => {
            if (!(await confirmDialog(`Unlink ${provider.label}`, 'It will no longer sign you in.', 'Unlink'))) return;
            await api('DELETE', `/me/identities/${provider.id}`);
            await loadIdentities();
          }) })
        : h('button', { type: 'button', class: 'small', text: 'Link', 'aria-label': `Link ${provider.label}`,
          onclick: guard(async () => {
            const password = linkForm.password.value;
            if (!password) { linkForm.password.focus(); throw new Error('Enter your password to link an account.'); }
            const started = await api('POST', `/me/identities/${provider.id}`, { password });
            location.assign(started.authorization_url);
          }) });
      return h('tr', {}, h('td', { text: provider.label }),
        h('td', { text: identity ? (identity.email || identity.subject) : 'Not linked' }), h('td', {}, action));
    }) : h('tr', {}, h('td', { colspan: 3, class: 'empty', text: 'No sign-in providers are set up.' })));
  });
  const linkForm = h('form', { class: 'stack' },
    field('Your password (to link an account)', { name: 'password', type: 'password', autocomplete: 'current-password' }));
  linkForm.addEventListener('submit', (event) => event.preventDefault());

  clear(main, h('h1', { text: `Account: ${app.me.username}` }), problem,
    h('section', { class: 'card', 'aria-labelledby': 'pw-title' }, h('h2', { id: 'pw-title', text: 'Password' }), passwordForm),
    h('section', { class: 'card', 'aria-labelledby': 'sessions-title' }, h('h2', { id: 'sessions-title', text: 'Where you are signed in' }),
      h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, ['Signed in', 'Last used', 'Address', 'How', 'Action'].map((text) => h('th', { scope: 'col', text })))), sessions))),
    h('section', { class: 'card', 'aria-labelledby': 'tokens-title' }, h('h2', { id: 'tokens-title', text: 'API tokens' }),
      h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Access', 'Expires', 'Last used', 'Action'].map((text) => h('th', { scope: 'col', text })))), tokens)),
      tokenForm),
    h('section', { class: 'card', 'aria-labelledby': 'providers-title' }, h('h2', { id: 'providers-title', text: 'Sign-in providers' }),
      h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, ['Provider', 'Account', 'Action'].map((text) => h('th', { scope: 'col', text })))), identities)),
      linkForm));
  await Promise.all([loadSessions(), loadTokens(), loadIdentities()]);
}
