// Admin pages: users (create, role, quota, disable, delete, end sessions) and the audit log.
import { h, clear, formatDate, formatSize, announce, alertBox, confirmDialog, formDialog, field } from './dom.js';
import { api, query } from './api.js';

export async function adminPage(main, rest, app) {
  if (app.me.role !== 'admin') {
    document.title = 'Not allowed · Coffer';
    clear(main, h('h1', { text: 'Not allowed' }), h('p', { role: 'alert', class: 'alert', text: 'Only admins may see this page.' }));
    return;
  }
  const tab = rest[0] === 'audit' ? 'audit' : 'users';
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Admin' },
    h('a', { href: '/app/admin/users', 'aria-current': tab === 'users' ? 'page' : null, text: 'Users' }),
    h('a', { href: '/app/admin/audit', 'aria-current': tab === 'audit' ? 'page' : null, text: 'Audit log' }));
  const body = h('div');
  clear(main, h('h1', { text: tab === 'users' ? 'Users' : 'Audit log' }), tabs, body);
  document.title = `${tab === 'users' ? 'Users' : 'Audit log'} · Coffer`;
  await (tab === 'users' ? usersTab(body, app) : auditTab(body));
}

const GiB = 1024 ** 3;

async function usersTab(body, app) {
  const problem = h('div');
  const tbody = h('tbody');
  const guard = (action) => async () => { clear(problem); try { await action(); } catch (err) { clear(problem, alertBox(err.message)); } };
  const load = guard(async () => {
    const users = [];
    let cursor;
    do {
      const page = await api('GET', `/users${query({ cursor, limit: 1000 })}`);
      users.push(...page.users);
      cursor = page.next_cursor;
    } while (cursor);
    clear(tbody, users.map((user) => {
      const self = user.id === app.me.id;
      const button = (text, onclick, cls) => h('button', { type: 'button', class: `small ${cls || ''}`, 'aria-label': `${text} ${user.username}`, text, onclick: guard(onclick) });
      return h('tr', {},
        h('th', { scope: 'row', text: user.username }),
        h('td', { text: user.role === 'admin' ? 'Admin' : 'User' }),
        h('td', { text: user.quota_bytes === undefined ? 'No limit' : formatSize(user.quota_bytes) }),
        h('td', { text: user.disabled ? 'Disabled' : 'Active' }),
        h('td', { text: formatDate(user.last_login_at) }),
        h('td', { class: 'actions' },
          button('Edit', async () => { if (await editUser(user)) await load(); }),
          self ? null : button(user.disabled ? 'Enable' : 'Disable', async () => {
            await api('PATCH', `/users/${user.id}`, { disabled: !user.disabled });
            announce(`${user.username} ${user.disabled ? 'enabled' : 'disabled'}`);
            await load();
          }),
          button('End sessions', async () => {
            const ended = await api('DELETE', `/users/${user.id}/sessions`);
            announce(`${ended.sessions_ended} sessions of ${user.username} ended`);
          }),
          self ? null : button('Delete', async () => {
            if (!(await confirmDialog(`Delete ${user.username}`, `Delete the account ${user.username} with all its files and share links?`, 'Delete'))) return;
            await api('DELETE', `/users/${user.id}`);
            announce(`${user.username} deleted`);
            await load();
          }, 'danger')));
    }));
  });
  const create = guard(async () => {
    const role = h('select', { id: 'new-role' }, h('option', { value: 'user', text: 'User' }), h('option', { value: 'admin', text: 'Admin' }));
    const made = await formDialog('New user', [
      field('Username', { name: 'username', required: true, autocomplete: 'off' }),
      field('Password (at least 10 characters)', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10 }),
      h('div', { class: 'field' }, h('label', { for: 'new-role', text: 'Role' }), role),
      field('Quota in GiB (optional)', { name: 'quota', type: 'number', min: 0, step: 'any' }),
    ], 'Create user', async (form) => {
      const request = { username: form.username.value.trim(), password: form.password.value, role: role.value };
      if (form.quota.value) request.quota_bytes = Math.round(Number(form.quota.value) * GiB);
      return api('POST', '/users', request);
    });
    if (made) { announce(`${made.username} created`); await load(); }
  });
  clear(body, h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', text: 'New user', onclick: create })), problem,
    h('div', { class: 'scroll' }, h('table', {}, h('caption', { class: 'visually-hidden', text: 'Accounts' }),
      h('thead', {}, h('tr', {}, ['Username', 'Role', 'Quota', 'State', 'Last sign-in', 'Actions'].map((text) => h('th', { scope: 'col', text })))),
      tbody)));
  await load();
}

function editUser(user) {
  const role = h('select', { id: 'edit-role' }, h('option', { value: 'user', text: 'User', selected: user.role === 'user' }),
    h('option', { value: 'admin', text: 'Admin', selected: user.role === 'admin' }));
  return formDialog(`Edit ${user.username}`, [
    h('div', { class: 'field' }, h('label', { for: 'edit-role', text: 'Role' }), role),
    field('Quota in GiB (empty: no limit)', { name: 'quota', type: 'number', min: 0, step: 'any', value: user.quota_bytes === undefined ? '' : String(user.quota_bytes / GiB) }),
    field('New password (optional)', { name: 'password', type: 'password', autocomplete: 'new-password', minlength: 10 }),
  ], 'Save', async (form) => {
    const change = { role: role.value, quota_bytes: form.quota.value ? Math.round(Number(form.quota.value) * GiB) : null };
    if (form.password.value) change.password = form.password.value;
    await api('PATCH', `/users/${user.id}`, change);
    announce(`${user.username} saved`);
    return true;
  });
}

async function auditTab(body) {
  const problem = h('div');
  const tbody = h('tbody');
  const more = h('button', { type: 'button', hidden: true, text: 'Older entries' });
  const filters = h('form', { class: 'inline', role: 'search' },
    field('Event', { name: 'event', placeholder: 'login_failed', autocomplete: 'off' }),
    field('User id', { name: 'user', autocomplete: 'off' }),
    h('button', { type: 'submit', text: 'Filter' }));
  let cursor = null;
  // A filter submitted while an earlier page is still on its way wins over that page.
  let loading = 0;
  async function load(next) {
    const turn = ++loading;
    clear(problem);
    try {
      const page = await api('GET', `/audit${query({ event: filters.event.value.trim(), user: filters.user.value.trim(), cursor: next ? cursor : undefined, limit: 100 })}`);
      if (turn !== loading) return;
      if (!next) clear(tbody);
      tbody.append(...page.entries.map((entry) => h('tr', {},
        h('td', { text: formatDate(entry.at) }), h('td', { text: entry.event }), h('td', { text: entry.actor_id || '' }),
        h('td', { text: entry.subject || '' }), h('td', { text: entry.ip || '' }), h('td', { text: entry.detail || '' }))));
      if (!tbody.rows.length) tbody.append(h('tr', {}, h('td', { colspan: 6, class: 'empty', text: 'No entries.' })));
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
    } catch (err) {
      clear(problem, alertBox(err.message));
    }
  }
  filters.addEventListener('submit', (event) => { event.preventDefault(); load(false); });
  more.addEventListener('click', () => load(true));
  clear(body, filters, problem, h('div', { class: 'scroll' }, h('table', {}, h('caption', { class: 'visually-hidden', text: 'Audit log, newest first' }),
    h('thead', {}, h('tr', {}, ['When', 'Event', 'Actor', 'Subject', 'Address', 'Detail'].map((text) => h('th', { scope: 'col', text })))),
    tbody)), more);
  await load(false);
}
