// Talks to the documented /api/v1 API with the session cookie. Every request carries
// X-Coffer-CSRF: the server refuses cookie requests that change something without it.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

const listeners = new Set();
// Called with the message when the session ended (401): the app goes to the sign-in page.
export function onSignedOut(listener) { listeners.add(listener); }
export function signedOut(message) { for (const listener of listeners) listener(message); }

export const CSRF_HEADER = 'X-Coffer-CSRF';

// Plain words for the server's error codes; the server's own message otherwise.
export function errorOf(status, body, retryAfter) {
  const code = body && body.error;
  let message = (body && body.message) || `the server answered ${status}`;
  if (status === 429 && retryAfter) message = `Too many attempts; try again in ${retryAfter} s.`;
  else if (code === 'invalid_credentials') message = 'Wrong username or password.';
  else if (status === 0) message = 'The server could not be reached; check the connection and try again.';
  return new ApiError(status, code, message, retryAfter);
}

export async function api(method, path, body, { signedOutOn401 = true } = {}) {
  const headers = { [CSRF_HEADER]: '1', Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}`, init);
  } catch {
    throw errorOf(0, null);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const err = errorOf(response.status, data, response.headers.get('Retry-After'));
    if (response.status === 401 && signedOutOn401) signedOut('Your session ended. Please sign in again.');
    throw err;
  }
  return data;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
