// The app's entry: who is signed in, the navigation, and routing by the URL's path (History
// API; the server answers every /app/... path with this same shell).
import { h, clear } from './dom.js';
import { api, onSignedOut } from './api.js';
import { signInPage, resetPasswordPage } from './signin.js';
import { forgetResumableUploads } from './resumable.js';

const pages = {
  files: () => import('./files.js').then((m) => m.filesPage),
  shares: () => import('./shares.js').then((m) => m.mySharesPage),
  shared: () => import('./shares.js').then((m) => m.sharedWithMePage),
  account: () => import('./account.js').then((m) => m.accountPage),
  admin: () => import('./admin.js').then((m) => m.adminPage),
};

export const app = { me: null, message: '' };

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route();
}

// Path segments after /app/, decoded.
function segments() {
  return location.pathname.replace(/^\/app\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
}

function renderNav() {
  const nav = document.getElementById('nav');
  if (!app.me) { nav.hidden = true; clear(nav); return; }
  const current = segments()[0] || 'files';
  const link = (key, href, text) => h('a', { href, 'aria-current': current === key ? 'page' : null, text });
  clear(nav, h('ul', {},
    h('li', {}, link('files', '/app/files', 'Files')),
    h('li', {}, link('shares', '/app/shares', 'My shares')),
    h('li', {}, link('shared', '/app/shared', 'Shared with me')),
    app.me.role === 'admin' ? h('li', {}, link('admin', '/app/admin/users', 'Admin')) : null,
    h('li', {}, link('account', '/app/account', 'Account')),
    h('li', {}, h('button', { type: 'button', class: 'link', onclick: signOut, text: 'Sign out' }))));
  nav.hidden = false;
}

async function signOut() {
  try { await api('POST', '/auth/logout', undefined, { signedOutOn401: false }); } catch { /* ended already */ }
  forgetResumableUploads();
  app.me = null;
  app.message = 'You are signed out.';
  navigate('/app/signin', { replace: true });
}

let routing = 0;
let resetToken = '';
export async function route() {
  const turn = ++routing;
  const main = document.getElementById('main');
  const [first, ...rest] = segments();
  if (first === 'reset-password') {
    const token = resetToken || decodeURIComponent(location.hash.slice(1));
    resetToken = token;
    if (location.hash) history.replaceState(null, '', '/app/reset-password');
    renderNav();
    clear(main, resetPasswordPage(token, async () => {
      resetToken = '';
      app.me = null;
      app.message = 'Your password is set, and every session of the account has ended. Sign in with it.';
      navigate('/app/signin', { replace: true });
    }));
    document.title = 'New password · Coffer';
    return;
  }
  if (first === 'signin' || !app.me) {
    if (first !== 'signin') history.replaceState({ next: location.pathname }, '', '/app/signin');
    renderNav();
    clear(main, signInPage(app.message, async () => {
      app.message = '';
      app.me = await api('GET', '/me');
      const next = history.state && history.state.next;
      navigate(next && next !== '/app/signin' ? next : '/app/files', { replace: true });
    }));
    document.title = 'Sign in · Coffer';
    return;
  }
  const key = pages[first] ? first : 'files';
  renderNav();
  const page = await pages[key]();
  if (turn !== routing) return;
  clear(main);
  await page(main, rest, app);
  if (document.activeElement === document.body) main.focus({ preventScroll: true });
}

// Links inside the app change the page without reloading it.
document.addEventListener('click', (event) => {
  const link = event.target.closest('a[href^="/app/"]');
  if (!link || link.target || link.hasAttribute('download') || event.button !== 0
      || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(link.getAttribute('href'));
});
window.addEventListener('popstate', () => route());

onSignedOut((message) => {
  if (!app.me) return;
  app.me = null;
  app.message = message;
  history.pushState({ next: location.pathname }, '', '/app/signin');
  route();
});

async function start() {
  try {
    app.me = await api('GET', '/me', undefined, { signedOutOn401: false });
  } catch {
    app.me = null;
  }
  if (location.pathname === '/app/' || location.pathname === '/app') history.replaceState(null, '', '/app/files');
  if (app.me && segments()[0] === 'signin') history.replaceState(null, '', '/app/files');
  route();
}
start();
