// The one DOM helper, formatting with Intl, the live region and dialogs. Text reaches the page
// only through textContent and DOM APIs: the CSP enforces Trusted Types, so HTML strings can't.

export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

export function clear(el, ...kids) {
  el.replaceChildren(...kids.flat(Infinity).filter((kid) => kid !== null && kid !== undefined && kid !== false));
  return el;
}

const sizeUnits = ['byte', 'kilobyte', 'megabyte', 'gigabyte', 'terabyte'];
export function formatSize(bytes) {
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < sizeUnits.length - 1) { value /= 1024; unit += 1; }
  return new Intl.NumberFormat(undefined, {
    style: 'unit', unit: sizeUnits[unit], unitDisplay: unit ? 'short' : 'long',
    maximumFractionDigits: unit && value < 10 ? 1 : 0,
  }).format(value);
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
export function formatDate(text) {
  if (!text) return '—';
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : dateFormat.format(date);
}

export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes} min ${Math.round(seconds % 60)} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// Polite announcements for screen readers (uploads done, items deleted, ...).
export function announce(text) {
  const live = document.getElementById('live');
  live.textContent = '';
  requestAnimationFrame(() => { live.textContent = text; });
}

export function alertBox(text) {
  return h('p', { class: 'alert', role: 'alert', text });
}

// A modal <dialog>: focus stays inside, Esc closes, focus returns to what opened it.
// `build(close)` returns the dialog's body; close(value) resolves the promise.
export function dialog(title, build, { wide = false } = {}) {
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const heading = h('h2', { id: `dialog-${Date.now()}`, text: title });
    const box = h('dialog', { class: wide ? 'wide' : '', 'aria-labelledby': heading.id });
    let result;
    const close = (value) => { result = value; box.close(); };
    box.addEventListener('close', () => {
      box.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(result);
    });
    // Tab and Shift+Tab wrap around inside the dialog (a modal <dialog> alone lets focus
    // leave for the browser's own controls).
    box.addEventListener('keydown', (event) => {
      if (event.key !== 'Tab') return;
      const stops = [...box.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')]
        .filter((el) => !el.disabled && el.tabIndex >= 0 && el.getClientRects().length > 0);
      if (!stops.length) return;
      const [first, last] = [stops[0], stops[stops.length - 1]];
      if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
      else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
    });
    box.append(heading, build(close));
    document.body.append(box);
    box.showModal();
  });
}

// A form inside a dialog: fields, a submit label; `submit(form)` may throw an error to show.
export function formDialog(title, fields, submitLabel, submit) {
  return dialog(title, (close) => {
    const problem = h('div');
    const form = h('form', { class: 'stack' }, fields, problem,
      h('div', { class: 'buttons' },
        h('button', { type: 'button', onclick: () => close(undefined), text: 'Cancel' }),
        h('button', { type: 'submit', class: 'primary', text: submitLabel })));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clear(problem);
      try {
        close(await submit(form));
      } catch (err) {
        clear(problem, alertBox(err.message));
      }
    });
    return form;
  });
}

export function confirmDialog(title, text, actionLabel) {
  return dialog(title, (close) => h('div', { class: 'stack' }, h('p', { text }),
    h('div', { class: 'buttons' },
      h('button', { type: 'button', onclick: () => close(false), text: 'Cancel' }),
      h('button', { type: 'button', class: 'danger', onclick: () => close(true), text: actionLabel }))));
}

export function field(label, attrs) {
  const id = `f-${Math.random().toString(36).slice(2)}`;
  return h('div', { class: 'field' }, h('label', { for: id, text: label }), h('input', { id, ...attrs }));
}
