// The upload panel: XMLHttpRequest uploads (fetch has no upload progress), three at a time,
// each with progress, speed, time left, cancel, retry and a choice when the name is taken.
// Files from RESUMABLE_FROM up are resumable (resumable.js); smaller ones are one PUT.
import { h, clear, formatSize, formatDuration, announce } from './dom.js';
import { CSRF_HEADER, errorOf, signedOut } from './api.js';
import { RESUMABLE_FROM, ResumableUpload, isCancelled } from './resumable.js';

const PARALLEL = 3;

class Upload {
  constructor(file, folder, done) {
    Object.assign(this, { file, folder, done, conflict: 'fail', state: 'queued', xhr: null, resumable: null, loaded: 0 });
    this.progress = h('progress', { max: file.size || 1, value: 0, 'aria-label': `Uploading ${file.name}` });
    this.status = h('span', { class: 'status', text: 'Waiting' });
    this.buttons = h('span', { class: 'row-buttons' });
    this.row = h('li', { class: 'upload' },
      h('span', { class: 'upload-name', text: file.name, title: [folder, file.name].filter(Boolean).join('/') }),
      this.progress, this.status, this.buttons);
    this.paint();
  }

  button(text, onclick, cls) {
    return h('button', { type: 'button', class: `small ${cls || ''}`, 'aria-label': `${text} ${this.file.name}`, text, onclick });
  }

  paint(text) {
    if (text !== undefined) this.status.textContent = text;
    this.row.dataset.state = this.state;
    const running = this.state === 'queued' || this.state === 'sending';
    clear(this.buttons,
      running ? this.button('Cancel', () => this.cancel()) : null,
      this.state === 'failed' || this.state === 'cancelled' ? this.button('Retry', () => panel.retry(this)) : null,
      this.state === 'conflict' ? [
        this.button('Keep both', () => panel.retry(this, 'rename')),
        this.button('Replace', () => panel.retry(this, 'replace'), 'danger'),
        this.button('Skip', () => { this.state = 'skipped'; this.paint('Skipped'); panel.update(); }),
      ] : null);
  }

  cancel() {
    if (this.xhr) this.xhr.abort();
    else if (this.resumable) this.resumable.cancel();
    else { this.state = 'cancelled'; this.paint('Cancelled'); panel.update(); }
  }

  // Progress, speed and time left; `base` is where this attempt began (a resumed upload).
  showProgress(loaded, total, base, started) {
    this.loaded = loaded;
    this.progress.value = loaded;
    const seconds = (performance.now() - started) / 1000;
    const speed = seconds > 0 ? (loaded - base) / seconds : 0;
    const left = speed > 0 ? (total - loaded) / speed : NaN;
    const percent = total ? Math.floor((loaded / total) * 100) : 0;
    this.paint(`${percent}% · ${formatSize(speed)}/s · ${formatDuration(left)} left`);
  }

  finish(state, text) {
    this.xhr = null;
    this.resumable = null;
    this.state = state;
    this.paint(text);
    panel.update();
  }

  succeeded() {
    this.progress.value = this.progress.max;
    this.finish('done', `Uploaded (${formatSize(this.file.size)})`);
    announce(`${this.file.name} uploaded`);
    this.done(this.folder);
  }

  failed(err, status) {
    if (err.code === 'name_taken') this.finish('conflict', `${this.file.name} exists already here. Keep both, replace it, or skip?`);
    else this.finish('failed', `Failed: ${err.message}`);
    if (status === 401) signedOut('Your session ended during an upload. Please sign in again.');
  }

  start() {
    this.state = 'sending';
    this.paint('Starting…');
    if (this.file.size >= RESUMABLE_FROM) this.startResumable();
    else this.startPut();
  }

  startResumable() {
    let started = null;
    let base = 0;
    const upload = new ResumableUpload(this.file, this.folder, this.conflict, {
      onProgress: (loaded) => {
        if (started === null || loaded < this.loaded) { started = performance.now(); base = loaded; }
        this.showProgress(loaded, this.file.size, base, started);
      },
      onWaiting: (text) => { started = null; this.paint(text); },
    });
    this.resumable = upload;
    upload.run().then(() => this.succeeded(), (err) => {
      if (isCancelled(err)) {
        this.finish('cancelled', 'Cancelled');
        announce(`${this.file.name} cancelled`);
      } else if (err.status === 0) {
        this.finish('failed', 'Failed: the connection stayed down. Retry to continue where it stopped.');
      } else {
        this.failed(err, err.status);
      }
    });
  }

  startPut() {
    const params = new URLSearchParams({ name: this.file.name, on_conflict: this.conflict });
    if (this.folder) params.set('folder', this.folder);
    const xhr = new XMLHttpRequest();
    this.xhr = xhr;
    const started = performance.now();
    xhr.open('PUT', `/api/v1/files/upload?${params}`);
    xhr.setRequestHeader(CSRF_HEADER, '1');
    xhr.setRequestHeader('Content-Type', this.file.type || 'application/octet-stream');
    xhr.upload.addEventListener('progress', (event) => this.showProgress(event.loaded, event.total, 0, started));
    xhr.addEventListener('load', () => {
      if (xhr.status === 201) {
        this.succeeded();
        return;
      }
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = null; }
      this.failed(errorOf(xhr.status, body, xhr.getResponseHeader('Retry-After')), xhr.status);
    });
    xhr.addEventListener('error', () => this.finish('failed', 'Failed: the connection was lost. Retry when the network is back.'));
    xhr.addEventListener('abort', () => { this.finish('cancelled', 'Cancelled'); announce(`${this.file.name} cancelled`); });
    xhr.send(this.file);
  }
}

const panel = {
  uploads: [],
  el: null,
  list: null,
  summary: null,

  mount() {
    if (this.el && this.el.isConnected) return;
    this.list = h('ul', { class: 'plain upload-list' });
    this.summary = h('p', { class: 'summary', 'aria-live': 'polite' });
    this.el = h('section', { class: 'uploads', 'aria-labelledby': 'uploads-title' },
      h('div', { class: 'uploads-head' }, h('h2', { id: 'uploads-title', text: 'Uploads' }), this.summary,
        h('button', { type: 'button', class: 'small', text: 'Cancel all', onclick: () => this.uploads.forEach((u) => (u.state === 'queued' || u.state === 'sending') && u.cancel()) }),
        h('button', { type: 'button', class: 'small', text: 'Clear finished', onclick: () => this.clearFinished() })),
      this.list);
    document.body.append(this.el);
  },

  add(entries, done) {
    this.mount();
    for (const { file, folder } of entries) {
      const upload = new Upload(file, folder, done);
      this.uploads.push(upload);
      this.list.append(upload.row);
    }
    this.update();
  },

  retry(upload, conflict) {
    if (conflict) upload.conflict = conflict;
    upload.state = 'queued';
    upload.progress.value = 0;
    upload.paint('Waiting');
    this.update();
  },

  clearFinished() {
    this.uploads = this.uploads.filter((upload) => {
      const finished = ['done', 'skipped', 'cancelled'].includes(upload.state);
      if (finished) upload.row.remove();
      return !finished;
    });
    if (!this.uploads.length) this.el.remove();
    else this.update();
  },

  active() {
    return this.uploads.some((upload) => upload.state === 'queued' || upload.state === 'sending');
  },

  update() {
    let sending = this.uploads.filter((upload) => upload.state === 'sending').length;
    for (const upload of this.uploads) {
      if (sending >= PARALLEL) break;
      if (upload.state === 'queued') { upload.start(); sending += 1; }
    }
    const count = (state) => this.uploads.filter((upload) => upload.state === state).length;
    const parts = [`${count('done')} of ${this.uploads.length} uploaded`];
    if (sending) parts.push(`${sending} in progress`);
    if (count('failed')) parts.push(`${count('failed')} failed`);
    if (count('conflict')) parts.push(`${count('conflict')} need a choice`);
    this.summary.textContent = parts.join(', ');
  },
};

// Leaving the page would cut the uploads off: the browser asks first.
window.addEventListener('beforeunload', (event) => {
  if (panel.active()) {
    event.preventDefault();
    event.returnValue = '';
  }
});

export const uploads = panel;
