// The public upload-link page (/u/{token}): sends each chosen file as one PUT with progress,
// one at a time, and says what became of it. Standalone: no sign-in, nothing else of the app.
// DOM APIs and textContent only (the page requires Trusted Types).

const form = document.getElementById('upload-form');
const input = document.getElementById('upload-files');
const list = document.getElementById('upload-progress');

function row(file) {
  const item = document.createElement('li');
  item.className = 'upload';
  const name = document.createElement('span');
  name.className = 'upload-name';
  name.textContent = file.name;
  const progress = document.createElement('progress');
  progress.max = file.size || 1;
  progress.value = 0;
  progress.setAttribute('aria-label', `Uploading ${file.name}`);
  const status = document.createElement('span');
  status.className = 'status';
  status.textContent = 'Waiting';
  item.append(name, progress, status);
  list.append(item);
  return { item, progress, status };
}

function send(file, view) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', `/u/${encodeURIComponent(form.dataset.token)}/files?name=${encodeURIComponent(file.name)}`);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = (event) => {
      view.progress.value = event.loaded;
      view.status.textContent = `${Math.floor((event.loaded / (event.total || 1)) * 100)}%`;
    };
    xhr.onload = () => {
      let message = '';
      try { message = JSON.parse(xhr.responseText).message || ''; } catch { message = ''; }
      const ok = xhr.status === 201;
      view.item.dataset.state = ok ? 'done' : 'failed';
      view.progress.value = ok ? view.progress.max : view.progress.value;
      view.status.textContent = ok ? 'Uploaded' : `Failed: ${message || xhr.status}`;
      resolve(ok);
    };
    xhr.onerror = () => {
      view.item.dataset.state = 'failed';
      view.status.textContent = 'Failed: the connection was lost';
      resolve(false);
    };
    view.status.textContent = 'Sending';
    xhr.send(file);
  });
}

if (form && input && list) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const files = Array.from(input.files || []);
    const button = form.querySelector('button');
    button.disabled = true;
    const max = Number(form.dataset.maxFile);
    for (const file of files) {
      const view = row(file);
      if (max && file.size > max) {
        view.item.dataset.state = 'failed';
        view.status.textContent = 'Too large for this link';
        continue;
      }
      await send(file, view);
    }
    input.value = '';
    button.disabled = false;
  });
}
