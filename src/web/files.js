// The files page: breadcrumb, folders first, sort, "load more", multi-select, actions, and
// the drop zone feeding the upload panel.
import { h, clear, formatSize, formatDate, announce, alertBox, formDialog, field } from './dom.js';
import { api, query } from './api.js';
import { uploads } from './upload.js';
import { renameItem, moveItems, deleteItems, fileDetails } from './file-actions.js';
import { shareDialog } from './shares.js';
import { uploadLinksDialog } from './upload-links.js';

const PAGE = 100;
let preferredSort = 'name';

export function folderHref(path) {
  return `/app/files${path ? `/${path.split('/').map(encodeURIComponent).join('/')}` : ''}`;
}

function breadcrumb(folder) {
  const parts = folder ? folder.split('/') : [];
  const items = [h('li', {}, h('a', { href: folderHref(''), 'aria-current': parts.length ? null : 'page', text: 'My files' }))];
  parts.forEach((part, index) => {
    const path = parts.slice(0, index + 1).join('/');
    const last = index === parts.length - 1;
    items.push(h('li', {}, h('a', { href: folderHref(path), 'aria-current': last ? 'page' : null, text: part })));
  });
  if (!parts.length) return null;
  return h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' }, h('ol', {}, items));
}

export async function filesPage(main, rest) {
  const folder = rest.join('/');
  const view = { folder, sort: preferredSort,
    folders: [], files: [], cursor: null, selected: new Set(), last: null };
  const problem = h('div');
  const tbody = h('tbody');
  const more = h('button', { type: 'button', hidden: true, text: 'Load more', onclick: () => load(true) });
  const count = h('p', { class: 'muted', role: 'status' });
  const selectAll = h('input', { type: 'checkbox', 'aria-label': 'Select all', onchange: () => {
    for (const item of items()) (selectAll.checked ? view.selected.add(item.key) : view.selected.delete(item.key));
    paintSelection();
  } });
  const selectionBar = h('div', { class: 'selection', hidden: true });
  const sortButton = (key, text) => h('button', { type: 'button', class: 'sort', text, onclick: () => {
    view.sort = key;
    preferredSort = key;
    load(false);
  } });
  const nameHead = h('th', { scope: 'col' }, sortButton('name', 'Name'));
  const dateHead = h('th', { scope: 'col', class: 'date' }, sortButton('created', 'Uploaded'));
  const table = h('table', { class: 'files' },
    h('caption', { class: 'visually-hidden', text: `Contents of ${folder || 'My files'}` }),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'check' }, selectAll), nameHead,
      h('th', { scope: 'col', class: 'size', text: 'Size' }), dateHead, h('th', { scope: 'col', text: 'Actions' }))),
    tbody);

  const items = () => [...view.folders.map((name) => ({ key: `d:${name}`, kind: 'folder', name,
    path: folder ? `${folder}/${name}` : name })), ...view.files.map((file) => ({ key: `f:${file.id}`, kind: 'file', name: file.name, file }))];
  const selectedItems = () => items().filter((item) => view.selected.has(item.key));

  const refresh = () => load(false);
  const act = (action) => async (...args) => {
    clear(problem);
    try {
      if (await action(...args)) await refresh();
    } catch (err) {
      clear(problem, alertBox(err.message));
    }
  };
  const rename = act((item) => renameItem(item, folder));
  const move = act((list) => moveItems(list, folder));
  const remove = act((list) => deleteItems(list));

  function row(item, index) {
    const check = h('input', { type: 'checkbox', 'aria-label': `Select ${item.name}`, checked: view.selected.has(item.key) });
    check.addEventListener('click', (event) => {
      if (event.shiftKey && view.last !== null) {
        const all = items();
        const [from, to] = [Math.min(view.last, index), Math.max(view.last, index)];
        for (let i = from; i <= to; i += 1) (check.checked ? view.selected.add(all[i].key) : view.selected.delete(all[i].key));
      } else {
        (check.checked ? view.selected.add(item.key) : view.selected.delete(item.key));
      }
      view.last = index;
      paintSelection();
    });
    const button = (text, onclick) => h('button', { type: 'button', class: 'small', 'aria-label': `${text} ${item.name}`, text, onclick });
    const isFolder = item.kind === 'folder';
    const name = isFolder
      ? h('a', { href: folderHref(item.path), class: 'folder', text: item.name })
      : h('a', { href: `/api/v1/files/${item.file.id}/content`, download: item.name, class: 'file', text: item.name });
    const tr = h('tr', { 'data-key': item.key, class: view.selected.has(item.key) ? 'selected' : '' },
      h('td', { class: 'check' }, check),
      h('td', { class: 'name' }, h('span', { class: isFolder ? 'icon folder-icon' : 'icon file-icon', 'aria-hidden': 'true' }), name),
      h('td', { class: 'size', text: isFolder ? 'Folder' : formatSize(item.file.size) }),
      h('td', { class: 'date', text: isFolder ? '' : formatDate(item.file.created_at) }),
      h('td', { class: 'actions' },
        isFolder ? null : button('Details', () => act(() => fileDetails(item.file))()),
        button('Share', () => act(() => shareDialog(isFolder ? { name: item.name, folderPath: item.path } : item.file))()),
        button('Rename', () => rename(item)),
        button('Move', () => move([item])),
        button('Delete', () => remove([item]))));
    // Ctrl/Cmd-click on a row toggles it, like a file manager.
    tr.addEventListener('click', (event) => {
      if (!(event.ctrlKey || event.metaKey) || event.target.closest('a, button, input')) return;
      check.click();
    });
    return tr;
  }

  function paintSelection() {
    const chosen = selectedItems();
    for (const tr of tbody.rows) tr.classList.toggle('selected', view.selected.has(tr.dataset.key));
    for (const input of tbody.querySelectorAll('td.check input')) input.checked = view.selected.has(input.closest('tr').dataset.key);
    selectAll.checked = chosen.length > 0 && chosen.length === items().length;
    selectAll.indeterminate = chosen.length > 0 && !selectAll.checked;
    selectionBar.hidden = chosen.length === 0;
    clear(selectionBar, h('span', { text: `${chosen.length} selected` }),
      chosen.every((item) => item.kind !== 'folder')
        ? h('button', { type: 'button', text: 'Share selected', onclick: () => act(() => shareDialog(
          { name: `${chosen.length} files`, ids: chosen.map((item) => item.file.id) }))() })
        : null,
      h('button', { type: 'button', text: 'Move selected', onclick: () => move(selectedItems()) }),
      h('button', { type: 'button', class: 'danger', text: 'Delete selected', onclick: () => remove(selectedItems()) }),
      h('button', { type: 'button', text: 'Clear selection', onclick: () => { view.selected.clear(); paintSelection(); } }));
  }

  function paintSort() {
    nameHead.setAttribute('aria-sort', view.sort === 'name' ? 'ascending' : 'none');
    dateHead.setAttribute('aria-sort', view.sort === 'created' ? 'ascending' : 'none');
  }

  let loading = 0;
  async function load(next) {
    const turn = ++loading;
    clear(problem);
    try {
      const page = await api('GET', `/files${query({ folder, sort: next ? undefined : view.sort, limit: PAGE, cursor: next ? view.cursor : undefined })}`);
      if (turn !== loading) return;
      if (!next) {
        view.folders = page.folders;
        view.files = [];
        view.selected.clear();
        view.last = null;
        clear(tbody);
      }
      const start = next ? items().length : 0;
      view.files.push(...page.files);
      view.cursor = page.next_cursor || null;
      const all = items();
      const fresh = all.slice(start);
      tbody.append(...fresh.map((item) => row(item, all.indexOf(item))));
      if (!all.length) tbody.append(h('tr', {}, h('td', { colspan: 5, class: 'empty', text: 'This folder is empty. Upload files or drop them here.' })));
      more.hidden = !view.cursor;
      count.textContent = `${view.folders.length} folders, ${view.files.length}${view.cursor ? '+' : ''} files`;
      paintSort();
      paintSelection();
    } catch (err) {
      clear(problem, alertBox(err.message));
    }
  }

  // Keyboard: Delete asks to delete the focused row (or the selection), F2 renames it.
  tbody.addEventListener('keydown', (event) => {
    const tr = event.target.closest('tr[data-key]');
    if (!tr || event.target.matches('input[type=text]')) return;
    const item = items().find((candidate) => candidate.key === tr.dataset.key);
    if (!item) return;
    if (event.key === 'Delete') {
      event.preventDefault();
      const chosen = selectedItems();
      remove(chosen.length && view.selected.has(item.key) ? chosen : [item]);
    } else if (event.key === 'F2') {
      event.preventDefault();
      rename(item);
    }
  });

  const filePicker = h('input', { type: 'file', id: 'pick-files', multiple: true, class: 'visually-hidden',
    onchange: () => { uploads.add([...filePicker.files].map((file) => ({ file, folder })), refreshIfHere); filePicker.value = ''; } });
  const folderPicker = h('input', { type: 'file', id: 'pick-folder', webkitdirectory: true, class: 'visually-hidden',
    onchange: () => {
      uploads.add([...folderPicker.files].map((file) => {
        const dirs = (file.webkitRelativePath || file.name).split('/').slice(0, -1).join('/');
        return { file, folder: [folder, dirs].filter(Boolean).join('/') };
      }), refreshIfHere);
      folderPicker.value = '';
    } });
  function refreshIfHere(uploadedFolder) {
    if (table.isConnected && (uploadedFolder === folder || uploadedFolder.startsWith(folder ? `${folder}/` : ''))) refresh();
  }
  const newFolder = () => act(() => formDialog('New folder', [field('Folder name', { name: 'name', required: true, autocomplete: 'off' })], 'Create', async (form) => {
    const path = folder ? `${folder}/${form.name.value.trim()}` : form.name.value.trim();
    await api('POST', '/folders', { path });
    announce(`Folder ${form.name.value.trim()} created`);
    return true;
  }))();

  const toolbar = h('div', { class: 'toolbar' },
    filePicker, h('label', { for: 'pick-files', class: 'button primary', text: 'Upload files' }),
    folderPicker, h('label', { for: 'pick-folder', class: 'button', text: 'Upload a folder' }),
    h('button', { type: 'button', onclick: newFolder, text: 'New folder' }),
    h('button', { type: 'button', onclick: () => uploadLinksDialog(folder), text: 'Upload links' }));

  const zone = h('section', { class: 'dropzone', 'aria-label': 'Files' }, table);
  zone.addEventListener('dragover', (event) => { event.preventDefault(); zone.classList.add('dragging'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', async (event) => {
    event.preventDefault();
    zone.classList.remove('dragging');
    const dropped = await droppedFiles(event.dataTransfer, folder);
    if (dropped.length) uploads.add(dropped, refreshIfHere);
  });

  document.title = `${folder ? folder.split('/').pop() : 'My files'} · Coffer`;
  clear(main, h('h1', { text: folder ? folder.split('/').pop() : 'My files' }), breadcrumb(folder), toolbar,
    selectionBar, problem, zone, h('div', { class: 'more' }, more, count));
  await load(false);
}

// Files from a drop: plain files, and folders walked through their entries.
async function droppedFiles(transfer, folder) {
  const out = [];
  const entries = [...(transfer.items || [])].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return [...transfer.files].map((file) => ({ file, folder }));
  async function walk(entry, path) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push({ file, folder: path });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      const sub = [folder && path === folder ? folder : path, entry.name].filter(Boolean).join('/');
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child, sub);
      }
    }
  }
  for (const entry of entries) await walk(entry, folder);
  return out;
}
