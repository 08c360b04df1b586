// Signing in from the page: Digest authentication (RFC 7616, SHA-256), as
// SIP clients do it, and the user name as people type it; or the
// organization's sign-in, whose session is an HttpOnly cookie the page
// never sees (the server ran the OAuth 2.0 sign-in and keeps the token).

async function sha256(s) {
  const b = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s));
  return [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');
}

// challenges parses a WWW-Authenticate value, which fetch gives with
// several challenges joined by commas.
function challenges(header) {
  return (header || '').split(/,\s*(?=(?:Digest|Bearer)\s)/i).map((c) => {
    const scheme = c.trim().split(/\s/, 1)[0];
    const params = { scheme };
    for (const m of c.slice(scheme.length).matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) {
      params[m[1].toLowerCase()] = m[2] !== undefined ? m[2] : m[3];
    }
    return params;
  });
}

// userName turns what someone types to sign in (bob, Bob,
// bob@example.test, sip:bob@example.test) into the user name the server
// knows (bob), when the address is of the server's own domain; an address
// of another domain is kept as typed, for the server to refuse.
export function userName(typed, domain) {
  let name = typed.trim().replace(/^sips?:/i, '');
  const at = name.lastIndexOf('@');
  if (at >= 0) {
    if (domain && name.slice(at + 1).toLowerCase() !== domain.toLowerCase()) return name;
    name = name.slice(0, at);
  }
  return name.toLowerCase();
}

// postWithDigest POSTs JSON, answering a Digest challenge with the
// credentials. credentials: 'omit' keeps the browser's own login dialog
// out of it.
export async function postWithDigest(path, body, user, password) {
  const opts = { method: 'POST', credentials: 'omit', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  let res = await fetch(path, opts);
  if (res.status !== 401) return res;
  const ch = challenges(res.headers.get('WWW-Authenticate'))
    .find((c) => c.scheme.toLowerCase() === 'digest' && (c.algorithm || '').toUpperCase() === 'SHA-256');
  if (!ch) return res;
  const cnonce = [...crypto.getRandomValues(new Uint8Array(16))].map((x) => x.toString(16).padStart(2, '0')).join('');
  const nc = '00000001';
  const ha1 = await sha256(`${user}:${ch.realm}:${password}`);
  const ha2 = await sha256(`POST:${path}`);
  const response = await sha256(`${ha1}:${ch.nonce}:${nc}:${cnonce}:auth:${ha2}`);
  opts.headers.Authorization = `Digest username="${user}", realm="${ch.realm}", nonce="${ch.nonce}", uri="${path}", ` +
    `algorithm=SHA-256, qop=auth, nc=${nc}, cnonce="${cnonce}", response="${response}"`;
  res = await fetch(path, opts);
  return res;
}

// errorOf reads a refused response's message: the server's JSON
// {"error": ...}, or its text. The body is read once.
export async function errorOf(res) {
  const text = await res.text().catch(() => '');
  try {
    return JSON.parse(text).error || text || res.statusText;
  } catch {
    return text.trim() || res.statusText;
  }
}

// postWithSession POSTs JSON with the browser's session cookie and no
// other credentials: the user signed in with their organization.
export function postWithSession(path, body) {
  return fetch(path, { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
}

// orgSession asks the server whether this meeting's organization signs
// in with its identity provider and who, if anyone, is signed in:
// { sign_in: bool, user: { uri, display_name } | null }.
export async function orgSession(meetingID) {
  try {
    const res = await fetch(`/auth/session?meeting=${encodeURIComponent(meetingID)}`, { credentials: 'same-origin' });
    return res.ok ? await res.json() : { sign_in: false, user: null };
  } catch {
    return { sign_in: false, user: null };
  }
}

// signOut ends the organization's sign-in session.
export function signOut() {
  return fetch('/auth/logout', { method: 'POST', credentials: 'same-origin' });
}
