// Rename, move, delete and details of files and folders. Each returns true when something
// changed, so the list is loaded again.
import { h, clear, dialog, formDialog, confirmDialog, field, formatSize, formatDate, announce, alertBox } from './dom.js';
import { api } from './api.js';

const join = (...parts) => parts.filter(Boolean).join('/');

export async function renameItem(item, folder) {
  const isFolder = item.kind === 'folder';
  return formDialog(`Rename ${item.name}`, [field('New name', { name: 'name', value: item.name, required: true, autocomplete: 'off' })], 'Rename', async (form) => {
    const name = form.name.value.trim();
    if (name === item.name) return false;
    if (isFolder) await api('POST', '/folders/move', { from: item.path, to: join(folder, name) });
    else await api('PATCH', `/files/${item.file.id}`, { name });
    announce(`Renamed ${item.name} to ${name}`);
    return true;
  });
}

export async function moveItems(items, folder) {
  if (!items.length) return false;
  const title = items.length === 1 ? `Move ${items[0].name}` : `Move ${items.length} items`;
  return formDialog(title, [field('To folder (empty for the top level)', { name: 'to', value: folder, autocomplete: 'off' })], 'Move', async (form) => {
    const to = form.to.value.trim().replace(/^\/+|\/+$/g, '');
    for (const item of items) {
      if (item.kind === 'folder') await api('POST', '/folders/move', { from: item.path, to: join(to, item.name) });
      else await api('PATCH', `/files/${item.file.id}`, { folder: to });
    }
    announce(`Moved ${items.length === 1 ? items[0].name : `${items.length} items`} to ${to || 'My files'}`);
    return true;
  });
}

export async function deleteItems(items) {
  if (!items.length) return false;
  const folders = items.filter((item) => item.kind === 'folder').length;
  const what = items.length === 1 ? items[0].name : `${items.length} items`;
  const text = folders
    ? `Delete ${what}? Folders are deleted with every file in them, and their share links stop working.`
    : `Delete ${what}? Share links to ${items.length === 1 ? 'it' : 'them'} stop working.`;
  if (!(await confirmDialog(`Delete ${what}`, text, 'Delete'))) return false;
  for (const item of items) {
    if (item.kind === 'folder') await api('DELETE', `/folders?path=${encodeURIComponent(item.path)}&recursive=true`);
    else await api('DELETE', `/files/${item.file.id}`);
  }
  announce(`Deleted ${what}`);
  return true;
}

// Raster images and plain text only: never SVG or HTML from this origin.
const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp'];
const TEXT_LIMIT = 64 * 1024;

async function preview(file) {
  const url = `/api/v1/files/${file.id}/content`;
  if (IMAGE_TYPES.includes(file.content_type)) {
    const response = await fetch(url, { credentials: 'same-origin' });
    if (!response.ok) return null;
    const blob = await response.blob();
    const img = h('img', { alt: `Preview of ${file.name}`, class: 'preview' });
    img.src = URL.createObjectURL(new Blob([blob], { type: file.content_type }));
    img.addEventListener('load', () => URL.revokeObjectURL(img.src), { once: true });
    return img;
  }
  if (file.content_type.startsWith('text/plain')) {
    const response = await fetch(url, { credentials: 'same-origin', headers: { Range: `bytes=0-${TEXT_LIMIT - 1}` } });
    if (!response.ok) return null;
    return h('pre', { class: 'preview', tabindex: 0, 'aria-label': `Text of ${file.name}`, text: await response.text() });
  }
  return null;
}

export async function fileDetails(file) {
  let changed = false;
  await dialog(file.name, (close) => {
    const problem = h('div');
    const grantList = h('ul', { class: 'plain' });
    const previewBox = h('div', { class: 'preview-box' });
    const description = h('textarea', { id: 'details-description', rows: 3, maxlength: 4096 });
    description.value = file.description || '';
    const guard = (action) => async (...args) => {
      clear(problem);
      try { await action(...args); } catch (err) { clear(problem, alertBox(err.message)); }
    };
    const loadGrants = guard(async () => {
      const grants = await api('GET', `/files/${file.id}/grants`);
      clear(grantList, grants.length ? grants.map((grant) => h('li', {}, h('span', { text: grant.username }),
        h('button', { type: 'button', class: 'small', 'aria-label': `Remove ${grant.username}`, text: 'Remove',
          onclick: guard(async () => { await api('DELETE', `/files/${file.id}/grants/${grant.user_id}`); announce(`${grant.username} removed`); await loadGrants(); }) })))
        : [h('li', { class: 'muted', text: 'Nobody else can read this file.' })]);
    });
    const grantName = h('input', { id: 'grant-user', autocomplete: 'off', required: true });
    const grantForm = h('form', { class: 'inline' }, h('label', { for: 'grant-user', text: 'Let a user read it' }), grantName,
      h('button', { type: 'submit', text: 'Add' }));
    grantForm.addEventListener('submit', guard(async (event) => {
      event.preventDefault();
      await api('POST', `/files/${file.id}/grants`, { username: grantName.value.trim() });
      announce(`${grantName.value.trim()} may read ${file.name}`);
      grantName.value = '';
      await loadGrants();
    }));
    const saveDescription = guard(async () => {
      const updated = await api('PATCH', `/files/${file.id}`, { description: description.value });
      file.description = updated.description;
      changed = true;
      announce('Description saved');
    });
    loadGrants();
    preview(file).then((shown) => { if (shown) clear(previewBox, shown); }).catch(() => {});
    return h('div', { class: 'stack' }, previewBox,
      h('dl', { class: 'facts' },
        h('dt', { text: 'Folder' }), h('dd', { text: file.folder || 'My files' }),
        h('dt', { text: 'Size' }), h('dd', { text: formatSize(file.size) }),
        h('dt', { text: 'Type' }), h('dd', { text: file.content_type }),
        h('dt', { text: 'Uploaded' }), h('dd', { text: formatDate(file.created_at) }),
        h('dt', { text: 'Modified' }), h('dd', { text: formatDate(file.modified_at) }),
        h('dt', { text: 'SHA-256' }), h('dd', { class: 'hash', text: file.sha256 })),
      h('div', { class: 'field' }, h('label', { for: 'details-description', text: 'Description' }), description,
        h('button', { type: 'button', onclick: saveDescription, text: 'Save description' })),
      h('h3', { text: 'Who else can read it' }), grantList, grantForm, problem,
      h('div', { class: 'buttons' },
        h('a', { class: 'button', href: `/api/v1/files/${file.id}/content`, download: file.name, text: 'Download' }),
        h('button', { type: 'button', class: 'primary', onclick: () => close(), text: 'Close' })));
  }, { wide: true });
  return changed;
}
