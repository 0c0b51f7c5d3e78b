// Share links: the share dialog (make and edit), "My shares" and "Shared with me".
import { h, clear, dialog, confirmDialog, formatDate, formatSize, announce, alertBox } from './dom.js';
import { api, query } from './api.js';

const PRESETS = [['1 hour', 3600], ['1 day', 86400], ['7 days', 7 * 86400], ['30 days', 30 * 86400]];

function copyButton(url, name) {
  const button = h('button', { type: 'button', class: 'small', 'aria-label': `Copy link to ${name}`, text: 'Copy link' });
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(url);
      announce('Link copied');
      button.textContent = 'Copied';
    } catch {
      announce('Copying failed; select the link and copy it yourself');
    }
  });
  return button;
}

// What a new link holds: one file ({ id }), several ({ ids }) or a folder ({ folderPath }).
function contents(target) {
  if (target.ids) return { file_ids: target.ids };
  if (target.folderPath) return { folder: target.folderPath };
  return { file_id: target.id };
}

// Make a link to `file` (a file, { name, ids } or { name, folderPath }), or edit `share` (then
// `file` is { name }).
export async function shareDialog(file, share) {
  let changed = false;
  await dialog(share ? `Edit the link to ${file.name}` : `Share ${file.name}`, (close) => {
    const problem = h('div');
    const result = h('div', { 'aria-live': 'polite' });
    const id = (name) => `share-${name}`;
    const expiry = h('select', { id: id('expiry') },
      share ? h('option', { value: 'keep', text: `Keep (${formatDate(share.expires_at)})` }) : null,
      PRESETS.map(([label, seconds]) => h('option', { value: String(seconds), text: label, selected: !share && seconds === 7 * 86400 })),
      h('option', { value: 'date', text: 'Until a date…' }));
    const date = h('input', { id: id('date'), type: 'date', hidden: true });
    expiry.addEventListener('change', () => { date.hidden = expiry.value !== 'date'; dateLabel.hidden = date.hidden; });
    const dateLabel = h('label', { for: id('date'), text: 'Last day', hidden: true });
    const password = h('input', { id: id('password'), type: 'password', autocomplete: 'new-password', minlength: 8 });
    const removePassword = share && share.has_password
      ? h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'nopassword' }), ' Remove the password') : null;
    const limit = h('input', { id: id('limit'), type: 'number', min: 1, step: 1, inputmode: 'numeric' });
    if (share && share.max_downloads) limit.value = share.max_downloads;
    const note = h('input', { id: id('note'), maxlength: 500, autocomplete: 'off' });
    if (share) note.value = share.note || '';
    const form = h('form', { class: 'stack' },
      h('div', { class: 'field' }, h('label', { for: id('expiry'), text: 'Expires' }), expiry, dateLabel, date),
      h('div', { class: 'field' }, h('label', { for: id('password'), text: share && share.has_password ? 'New password (optional)' : 'Password (optional)' }), password, removePassword),
      h('div', { class: 'field' }, h('label', { for: id('limit'), text: file.ids || file.folderPath || (share && share.kind !== 'file') ? 'Download limit per file (optional)' : 'Download limit (optional)' }), limit),
      h('div', { class: 'field' }, h('label', { for: id('note'), text: 'Note for yourself (optional)' }), note),
      problem, result,
      h('div', { class: 'buttons' },
        h('button', { type: 'button', onclick: () => close(), text: share ? 'Cancel' : 'Close' }),
        h('button', { type: 'submit', class: 'primary', text: share ? 'Save' : 'Create link' })));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clear(problem);
      const body = { note: note.value };
      if (expiry.value === 'date') {
        if (!date.value) { clear(problem, alertBox('Choose the last day the link works.')); return; }
        body.expires_at = new Date(`${date.value}T23:59:59`).toISOString().replace(/\.\d+Z$/, 'Z');
      } else if (expiry.value !== 'keep') body.expires_in = Number(expiry.value);
      if (password.value) body.password = password.value;
      else if (removePassword && form.nopassword.checked) body.password = null;
      if (limit.value) body.max_downloads = Number(limit.value);
      else if (share && share.max_downloads) body.max_downloads = null;
      try {
        const saved = share ? await api('PATCH', `/shares/${share.id}`, body) : await api('POST', '/shares', { ...contents(file), ...body });
        changed = true;
        if (share) { announce('Link saved'); close(); return; }
        clear(result, h('div', { class: 'link-box' },
          h('label', { for: id('url'), text: 'Link' }),
          h('input', { id: id('url'), readonly: true, value: saved.url || '' }),
          copyButton(saved.url || '', file.name)),
          h('p', { class: 'muted', text: `Works until ${formatDate(saved.expires_at)}${saved.max_downloads ? `, for ${saved.max_downloads} download(s)` : ''}.` }));
        form.querySelector('button[type=submit]').hidden = true;
        announce('Link created');
      } catch (err) {
        clear(problem, alertBox(err.message));
      }
    });
    return form;
  });
  return changed;
}

const STATES = { active: 'Active', expired: 'Expired', exhausted: 'Limit reached', disabled: 'Disabled' };

export async function mySharesPage(main) {
  document.title = 'My shares · Coffer';
  const problem = h('div');
  const tbody = h('tbody');
  const more = h('button', { type: 'button', hidden: true, text: 'Load more' });
  let cursor = null;
  const guard = (action) => async () => { clear(problem); try { await action(); } catch (err) { clear(problem, alertBox(err.message)); } };
  function row(share) {
    const name = share.file_name;
    return h('tr', {},
      h('th', { scope: 'row', class: 'name', text: name }),
      h('td', { text: formatDate(share.created_at) }),
      h('td', { text: formatDate(share.expires_at) }),
      h('td', { class: 'downloads', text: `${share.downloads}${share.max_downloads ? ` / ${share.max_downloads}` : ''}` }),
      h('td', { text: share.has_password ? 'Yes' : 'No' }),
      h('td', { text: STATES[share.state] || share.state }),
      h('td', { class: 'actions' },
        share.url ? copyButton(share.url, name) : null,
        h('button', { type: 'button', class: 'small', 'aria-label': `Edit the link to ${name}`, text: 'Edit',
          onclick: guard(async () => { if (await shareDialog({ name }, share)) await load(false); }) }),
        h('button', { type: 'button', class: 'small danger', 'aria-label': `Revoke the link to ${name}`, text: 'Revoke',
          onclick: guard(async () => {
            if (!(await confirmDialog(`Revoke the link to ${name}`, 'The link stops working at once, for everyone who has it.', 'Revoke'))) return;
            await api('DELETE', `/shares/${share.id}`);
            announce(`Link to ${name} revoked`);
            await load(false);
          }) })));
  }
  let loading = 0;
  async function load(next) {
    const turn = ++loading;
    try {
      const page = await api('GET', `/shares${query({ cursor: next ? cursor : undefined })}`);
      if (turn !== loading) return;
      if (!next) clear(tbody);
      tbody.append(...page.shares.map(row));
      if (!tbody.rows.length) tbody.append(h('tr', {}, h('td', { colspan: 7, class: 'empty', text: 'You have no share links. Share a file from its row in Files.' })));
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
    } catch (err) {
      clear(problem, alertBox(err.message));
    }
  }
  more.addEventListener('click', () => load(true));
  clear(main, h('h1', { text: 'My shares' }), problem,
    h('div', { class: 'scroll' }, h('table', {},
      h('caption', { class: 'visually-hidden', text: 'Your share links' }),
      h('thead', {}, h('tr', {}, ['File', 'Created', 'Expires', 'Downloads', 'Password', 'State', 'Actions'].map((text) => h('th', { scope: 'col', text })))),
      tbody)), more);
  await load(false);
}

export async function sharedWithMePage(main) {
  document.title = 'Shared with me · Coffer';
  const problem = h('div');
  const tbody = h('tbody');
  clear(main, h('h1', { text: 'Shared with me' }), problem,
    h('div', { class: 'scroll' }, h('table', {},
      h('caption', { class: 'visually-hidden', text: 'Files others let you read' }),
      h('thead', {}, h('tr', {}, ['Name', 'Size', 'Uploaded'].map((text) => h('th', { scope: 'col', text })))),
      tbody)));
  try {
    const page = await api('GET', '/files?shared_with_me=true&limit=1000');
    tbody.append(...page.files.map((file) => h('tr', {},
      h('td', { class: 'name' }, h('a', { href: `/api/v1/files/${file.id}/content`, download: file.name, text: file.name })),
      h('td', { text: formatSize(file.size) }),
      h('td', { text: formatDate(file.created_at) }))));
    if (!page.files.length) tbody.append(h('tr', {}, h('td', { colspan: 3, class: 'empty', text: 'Nobody has shared a file with you yet.' })));
  } catch (err) {
    clear(problem, alertBox(err.message));
  }
}
