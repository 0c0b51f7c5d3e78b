// Big files go over the server's resumable upload endpoint (tus 1.0.0, /api/v1/uploads), in
// PATCHes of up to CHUNK bytes: each is acknowledged durable on the server, and a proxy's
// body-size limit never sees more than one. When a request fails (the network went away, the
// server restarted), HEAD asks how much arrived (the server keeps every byte it received,
// acknowledged or not) and the next PATCH sends the rest, as soon as the network is back. The
// upload's URL is kept in localStorage under the file's folder, name, size and date, so after
// a reload picking the same file again continues it. The URL is no credential: every request
// still needs the session. A chunk authorised at its start finishes; if the session ends
// between chunks, the upload stops with the sign-in message and continues after signing in.
import { CSRF_HEADER, errorOf } from './api.js';

export const RESUMABLE_FROM = 4 * 1024 * 1024;
const CHUNK = 16 * 1024 * 1024;

const STORE = 'coffer.resumable-uploads';
// Waits between attempts that made no progress; then it stops and offers Retry.
const RETRY_DELAYS = [500, 1000, 2000, 4000, 8000, 15000, 30000];

function stored() {
  try { return JSON.parse(localStorage.getItem(STORE)) || {}; } catch { return {}; }
}

function store(key, url) {
  const all = stored();
  if (url) all[key] = url; else delete all[key];
  if (Object.keys(all).length) localStorage.setItem(STORE, JSON.stringify(all));
  else localStorage.removeItem(STORE);
}

// Signing out forgets every unfinished upload of the account.
export function forgetResumableUploads() {
  localStorage.removeItem(STORE);
}

function base64(text) {
  let binary = '';
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

class Cancelled extends Error {}

export class ResumableUpload {
  // `onProgress(bytesOnServerOrSent)`, `onWaiting(message)`: what the upload row shows.
  constructor(file, folder, conflict, { onProgress, onWaiting }) {
    Object.assign(this, { file, folder, conflict, onProgress, onWaiting });
    this.key = JSON.stringify([folder, file.name, file.size, file.lastModified]);
    this.xhr = null;
    this.cancelled = false;
    this.wake = null;
    // Where this attempt began: the row's speed counts only what this page sent.
    this.resumedAt = null;
  }

  request(method, url, headers, body) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open(method, url);
      xhr.setRequestHeader('Tus-Resumable', '1.0.0');
      xhr.setRequestHeader(CSRF_HEADER, '1');
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
      if (body) {
        const base = Number(headers['Upload-Offset']);
        xhr.upload.addEventListener('progress', (event) => this.onProgress(base + event.loaded));
      }
      const done = () => { this.xhr = null; resolve(xhr); };
      xhr.addEventListener('loadend', done);
      xhr.send(body || null);
    });
  }

  failure(xhr) {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch { body = null; }
    return errorOf(xhr.status, body, xhr.getResponseHeader('Retry-After'));
  }

  // Resolves when the upload is a file; rejects with the ApiError that stopped it.
  async run() {
    let url = stored()[this.key] || null;
    let offset = url ? await this.offsetOf(url) : null;
    if (offset === null) {
      url = await this.create();
      offset = 0;
    }
    this.resumedAt = offset;
    this.onProgress(offset);
    let attempt = 0;
    for (;;) {
      if (this.cancelled) throw new Cancelled();
      const xhr = await this.request('PATCH', url, {
        'Upload-Offset': String(offset),
        'Content-Type': 'application/offset+octet-stream',
      }, this.file.slice(offset, offset + CHUNK));
      if (this.cancelled) throw new Cancelled();
      if (xhr.status === 204) {
        if (xhr.getResponseHeader('Coffer-File-Id')) { store(this.key, null); return; }
        offset = Number(xhr.getResponseHeader('Upload-Offset'));
        attempt = 0;
        continue;
      }
      const err = this.failure(xhr);
      if (err.status === 404) store(this.key, null);
      const transient = xhr.status === 0 || xhr.status === 409 || xhr.status === 423 || xhr.status === 429 || xhr.status >= 500;
      if (!transient || err.code === 'name_taken' || attempt >= RETRY_DELAYS.length) throw err;
      const before = offset;
      await this.pause(RETRY_DELAYS[attempt], err);
      const now = await this.offsetOf(url, true);
      if (now === null) throw err;
      attempt = now > before ? 0 : attempt + 1;
      offset = now;
      this.onProgress(offset);
    }
  }

  // POST: the upload exists on the server, with its URL kept for a reload.
  async create() {
    const metadata = [['name', this.file.name], ['on_conflict', this.conflict]];
    if (this.folder) metadata.push(['folder', this.folder]);
    const xhr = await this.request('POST', '/api/v1/uploads', {
      'Upload-Length': String(this.file.size),
      'Upload-Metadata': metadata.map(([key, value]) => `${key} ${base64(value)}`).join(','),
    });
    if (this.cancelled) throw new Cancelled();
    if (xhr.status !== 201) throw this.failure(xhr);
    const url = xhr.getResponseHeader('Location');
    store(this.key, url);
    return url;
  }

  // HEAD: the durable offset, or null when the server no longer has the upload. While the
  // network is down (`retrying`), it waits and asks again.
  async offsetOf(url, retrying = false) {
    for (let attempt = 0; ; attempt += 1) {
      if (this.cancelled) throw new Cancelled();
      const xhr = await this.request('HEAD', url, {});
      if (xhr.status === 200) return Number(xhr.getResponseHeader('Upload-Offset'));
      if (xhr.status === 404 || xhr.status === 410 || xhr.status === 403) { store(this.key, null); return null; }
      const err = this.failure(xhr);
      if (!retrying || (xhr.status !== 0 && xhr.status < 500) || attempt >= RETRY_DELAYS.length) throw err;
      await this.pause(RETRY_DELAYS[attempt], err);
    }
  }

  // Waits before the next attempt; with the network off, until it is back.
  pause(ms, err) {
    const offline = err.status === 0 || !navigator.onLine;
    this.onWaiting(offline ? 'Connection lost; continuing when the network is back…' : `Paused: ${err.message} Trying again…`);
    return new Promise((resolve) => {
      let timer = null;
      const go = () => {
        clearTimeout(timer);
        window.removeEventListener('online', go);
        this.wake = null;
        resolve();
      };
      this.wake = go;
      window.addEventListener('online', go);
      if (navigator.onLine) timer = setTimeout(go, ms);
    });
  }

  // Stops sending and removes what the server holds of the upload. The server may still be
  // closing the cut PATCH (423 until it has): ask again, a few times.
  async cancel() {
    this.cancelled = true;
    if (this.xhr) this.xhr.abort();
    if (this.wake) this.wake();
    const url = stored()[this.key];
    store(this.key, null);
    if (!url) return;
    for (const delay of [0, ...RETRY_DELAYS]) {
      if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
      const xhr = await this.request('DELETE', url, {});
      if (xhr.status !== 423 && xhr.status !== 0 && xhr.status < 500) return;
    }
  }
}

export function isCancelled(err) {
  return err instanceof Cancelled;
}
