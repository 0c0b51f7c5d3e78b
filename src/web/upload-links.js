// Upload links for the folder on screen: make one (expiry, limits, password, note, notices),
// see each with what it received, edit it, disable or revoke it. The public page is /u/{token}.
import { h, clear, dialog, confirmDialog, formatDate, formatSize, announce, alertBox } from './dom.js';
import { api } from './api.js';

const PRESETS = [['1 day', 86400], ['7 days', 7 * 86400], ['30 days', 30 * 86400]];
const STATES = { active: 'Active', expired: 'Expired', full: 'Full', disabled: 'Disabled' };
const MB = 1_000_000;

export async function uploadLinksDialog(folder) {
  await dialog(`Upload links for ${folder || 'My files'}`, (close) => {
    const problem = h('div');
    const list = h('ul', { class: 'stack', 'aria-label': 'Upload links' });
    const id = (name) => `uplink-${name}`;
    let editing = null;
    const expiry = h('select', { id: id('expiry') },
      h('option', { value: 'keep', text: 'Keep', hidden: true }),
      PRESETS.map(([label, seconds]) => h('option', { value: String(seconds), text: label, selected: seconds === 7 * 86400 })));
    const number = (name, value) => h('input', { id: id(name), type: 'number', min: 1, step: 1, inputmode: 'numeric', value });
    const maxFiles = number('files', '10');
    const maxTotal = number('total', '100');
    const maxFile = number('file', '');
    const password = h('input', { id: id('password'), type: 'password', autocomplete: 'new-password', minlength: 8 });
    const note = h('textarea', { id: id('note'), maxlength: 2000, rows: 2 });
    const notify = h('input', { id: id('notify'), type: 'checkbox' });
    const submit = h('button', { type: 'submit', class: 'primary', text: 'Create upload link' });
    const labelled = (name, text, input) => h('div', { class: 'field' }, h('label', { for: id(name), text }), input);
    const form = h('form', { class: 'stack' },
      labelled('expiry', 'Open for', expiry),
      labelled('files', 'Most files', maxFiles),
      labelled('total', 'Most in all (MB)', maxTotal),
      labelled('file', 'Largest file (MB, optional)', maxFile),
      labelled('password', 'Password (optional)', password),
      labelled('note', 'Note shown to uploaders (optional)', note),
      h('label', { class: 'check' }, notify, ' Mail me at each file received'),
      h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: () => close(), text: 'Close' }), submit));
    const guard = (action) => async () => { clear(problem); try { await action(); } catch (err) { clear(problem, alertBox(err.message)); } };

    function edit(link) {
      editing = link;
      expiry.options[0].hidden = false;
      expiry.value = 'keep';
      maxFiles.value = link.max_files;
      maxTotal.value = link.max_total_bytes / MB;
      maxFile.value = link.max_file_bytes / MB;
      note.value = link.note;
      notify.checked = link.notify_uploads;
      password.value = '';
      submit.textContent = 'Save upload link';
      maxFiles.focus();
    }

    function row(link) {
      const name = `the upload link made ${formatDate(link.created_at)}`;
      const patch = (body, said) => guard(async () => { await api('PATCH', `/upload-links/${link.id}`, body); announce(said); await load(); });
      return h('li', { class: 'upload-link' },
        h('input', { readonly: true, value: link.url || '', 'aria-label': `Link of ${name}` }),
        h('p', { class: 'muted', text: `${STATES[link.state] || link.state} · ${link.files_received} of ${link.max_files} files · ${formatSize(link.bytes_received)} of ${formatSize(link.max_total_bytes)} · until ${formatDate(link.expires_at)}${link.has_password ? ' · password' : ''}` }),
        h('div', { class: 'buttons' },
          h('button', { type: 'button', class: 'small', 'aria-label': `Copy ${name}`, text: 'Copy',
            onclick: guard(async () => { await navigator.clipboard.writeText(link.url || ''); announce('Link copied'); }) }),
          h('button', { type: 'button', class: 'small', 'aria-label': `Edit ${name}`, text: 'Edit', onclick: () => edit(link) }),
          link.disabled
            ? h('button', { type: 'button', class: 'small', 'aria-label': `Enable ${name}`, text: 'Enable', onclick: patch({ disabled: false }, 'Link enabled') })
            : h('button', { type: 'button', class: 'small', 'aria-label': `Disable ${name}`, text: 'Disable', onclick: patch({ disabled: true }, 'Link disabled') }),
          h('button', { type: 'button', class: 'small danger', 'aria-label': `Revoke ${name}`, text: 'Revoke',
            onclick: guard(async () => {
              if (!(await confirmDialog('Revoke the upload link', 'The link stops working at once; files received stay.', 'Revoke'))) return;
              await api('DELETE', `/upload-links/${link.id}`);
              announce('Upload link revoked');
              await load();
            }) })));
    }

    async function load() {
      const page = await api('GET', '/upload-links?limit=200');
      const here = page.upload_links.filter((link) => link.folder === folder);
      clear(list, here.length ? here.map(row) : h('li', { class: 'muted', text: 'No upload links for this folder yet.' }));
    }

    const save = guard(async () => {
      const body = { max_files: Number(maxFiles.value), max_total_bytes: Math.round(Number(maxTotal.value) * MB), note: note.value, notify_uploads: notify.checked };
      if (maxFile.value) body.max_file_bytes = Math.round(Number(maxFile.value) * MB);
      if (expiry.value !== 'keep') body.expires_in = Number(expiry.value);
      if (password.value) body.password = password.value;
      if (editing) {
        await api('PATCH', `/upload-links/${editing.id}`, body);
        announce('Upload link saved');
      } else {
        await api('POST', '/upload-links', { folder, ...body });
        announce('Upload link created');
      }
      editing = null;
      expiry.options[0].hidden = true;
      expiry.value = String(7 * 86400);
      submit.textContent = 'Create upload link';
      password.value = '';
      await load();
    });
    form.addEventListener('submit', (event) => { event.preventDefault(); save(); });
    load().catch((err) => clear(problem, alertBox(err.message)));
    return h('div', { class: 'stack' }, problem, list, form);
  }, { wide: true });
}
