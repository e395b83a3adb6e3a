/* Nurture's first-party website tracker: what it does and what it sends is docs/tracking.md.
 *
 *   <script async src="BASE/t.js" data-site="SITE_KEY" [data-consent="denied"]></script>
 *
 * Plain ES2017, no dependencies, served as is. Nothing is sent and no id is kept under Global
 * Privacy Control, Do Not Track or consent "denied". Sent events stay in sessionStorage until
 * the server answers, so a page left (or a network lost) before that resends them from the
 * next page under the same ids, which the server counts once. */
(() => {
  'use strict';
  const w = window, d = document, n = navigator;
  const me = d.currentScript || [...d.scripts].reverse().find(s => /\/t\.js([?#]|$)/.test(s.src));
  if (!me || !me.dataset.site || (w.nurture && w.nurture.loaded)) return;
  const site = encodeURIComponent(me.dataset.site);
  const base = me.src.replace(/\/t\.js([?#].*)?$/, '');
  const ID = '_nv', CONSENT = '_nc', UNSENT = '_nq';
  const DOWNLOAD = /\.(pdf|zip|docx?|xlsx?|pptx?|csv|epub)$/i;
  const SKIPPED_TYPES = /^(password|file|submit|button|reset|image)$/;
  const SECRET_NAME = /pass|card|^cc|cvv|cvc|csc|iban/i; // never sent by the form capture

  // --- storage that may be missing (blocked cookies, private windows): never an error ---
  const store = (area, key, value) => {
    try {
      if (value === undefined) return w[area].getItem(key);
      if (value === null) w[area].removeItem(key);
      else w[area].setItem(key, value);
    } catch (e) { /* storage unavailable: the tracker works without it */ }
    return null;
  };
  const valid = id => (/^[\w-]{16,64}$/.test(id || '') ? id : null);
  const random = () => [...crypto.getRandomValues(new Uint8Array(16))]
    .map(b => (b + 256).toString(16).slice(1)).join(''); // 128 bits, 32 hex digits

  // --- the visitor id: a first-party cookie on the page's own domain, and localStorage ---
  let visitor = null;
  const cookieId = () => (d.cookie.match(/(?:^|;\s*)_nv=([\w-]+)/) || [])[1];
  const id = () => {
    if (!visitor) {
      visitor = valid(cookieId()) || valid(store('localStorage', ID)) || random();
      const secure = location.protocol === 'https:' ? '; Secure' : '';
      d.cookie = `${ID}=${visitor}; Max-Age=63072000; Path=/; SameSite=Lax${secure}`;
      store('localStorage', ID, visitor);
    }
    return visitor;
  };
  const forget = () => {
    visitor = null;
    d.cookie = `${ID}=; Max-Age=0; Path=/`;
    store('localStorage', ID, null);
    store('sessionStorage', UNSENT, null);
    d.querySelectorAll(`form input[type=hidden][name=${ID}]`).forEach(input => input.remove());
  };

  // A link from one of our emails carries ?nt=TOKEN: it leaves the address bar whatever happens.
  const params = new URLSearchParams(location.search), token = params.get('nt');
  if (token !== null) {
    params.delete('nt');
    const query = params.toString();
    history.replaceState(history.state, '', location.pathname + (query ? `?${query}` : '') + location.hash);
  }

  const optedOut = n.globalPrivacyControl === true ||
    [n.doNotTrack, w.doNotTrack, n.msDoNotTrack].some(v => v === '1' || v === 'yes');
  if (optedOut) {
    forget();
    w.nurture = Object.assign(() => {}, { loaded: true });
    return;
  }
  let consent = store('localStorage', CONSENT) || (me.dataset.consent === 'denied' ? 'denied' : 'granted');
  if (consent !== 'granted') forget();
  let waiting = []; // what this page did before consent was given: done if it is, dropped if not
  const when = action => (consent === 'granted' ? action() : waiting.push(action));

  // --- sending: a beacon (text/plain, a CORS simple request), else fetch with keepalive ---
  const fetchPost = (path, body) => fetch(base + path, {
    method: 'POST', body: JSON.stringify(body), keepalive: true, mode: 'cors',
    headers: { 'Content-Type': 'text/plain' },
  });
  const post = (path, body) => {
    try {
      const blob = new Blob([JSON.stringify(body)], { type: 'text/plain' });
      if (n.sendBeacon && n.sendBeacon(base + path, blob)) return Promise.resolve(true);
    } catch (e) { /* no beacon here: fetch below */ }
    // Answered: done (a 4xx will not get better by resending). No answer, 5xx or 429: resend.
    return fetchPost(path, body).then(r => r.status < 500 && r.status !== 429, () => false);
  };
  const unsent = () => {
    try { return JSON.parse(store('sessionStorage', UNSENT)) || []; } catch (e) { return []; }
  };
  const keepUnsent = list => store('sessionStorage', UNSENT, list.length ? JSON.stringify(list.slice(-50)) : null);
  const send = events => {
    const ids = events.map(e => e.id);
    const others = () => unsent().filter(e => !ids.includes(e.id));
    keepUnsent(others().concat(events));
    post(`/t/${site}`, { visitor: id(), consent: 'granted', events }).then(sent => sent && keepUnsent(others()));
  };
  const event = (type, fields) => Object.assign(
    { id: random(), type, at: new Date().toISOString(), url: location.href.slice(0, 2048) }, fields);
  const track = (type, fields) => {
    const happened = event(type, fields); // its time is now, even if it waits for consent
    when(() => send([happened]));
  };
  const identify = fields => when(() => post(`/t/${site}/identify`,
    Object.assign({}, fields, { visitor: id(), consent: 'granted' })));

  // --- forms: a hidden _nv in forms posting to us; a copy of data-nurture-form submissions ---
  const postsToUs = form => !!form.getAttribute('action') && form.action.startsWith(`${base}/f/`);
  const tag = form => {
    if (consent !== 'granted' || !postsToUs(form)) return;
    let input = form.querySelector(`input[name=${ID}]`);
    if (!input) {
      input = Object.assign(d.createElement('input'), { type: 'hidden', name: ID });
      form.appendChild(input);
    }
    input.value = id();
  };
  const tagForms = () => [...d.forms].forEach(tag);
  const capture = (form, name) => {
    const fields = {};
    for (const field of form.elements) {
      if (!field.name || field.name === ID || field.disabled || SKIPPED_TYPES.test(field.type) ||
          SECRET_NAME.test(field.name) || /^cc-/.test(field.autocomplete || '') ||
          (/^(checkbox|radio)$/.test(field.type) && !field.checked)) continue;
      fields[field.name] = String(field.value);
    }
    when(() => fetchPost(`/f/${site}/${encodeURIComponent(name)}`,
      { visitor: id(), consent: 'granted', fields }).catch(() => {}));
  };

  // --- the page's calls: nurture('track'|'identify'|'consent', …), queued ones first ---
  const setConsent = choice => {
    if (choice !== 'granted' && choice !== 'denied') return;
    store('localStorage', CONSENT, choice);
    consent = choice;
    const actions = waiting;
    waiting = [];
    if (choice === 'granted') {
      actions.forEach(action => action());
      tagForms();
    } else forget();
  };
  const api = (command, a, b) => {
    if (command === 'track' && typeof a === 'string') track(a, { props: b && typeof b === 'object' ? b : {} });
    else if (command === 'identify' && a && typeof a === 'object') identify(a);
    else if (command === 'consent') setConsent(a);
  };
  api.loaded = true;
  const queued = (w.nurture && w.nurture.q) || [];
  w.nurture = api;
  [...queued].forEach(args => api(...args));

  // --- this page: its view (with what earlier pages could not send), clicks and forms ---
  const view = event('page_view', { referrer: d.referrer.slice(0, 2048), title: d.title.slice(0, 300) });
  when(() => send(unsent().slice(-49).concat(view)));
  if (token) identify({ token });
  const onClick = e => {
    const link = e.target.closest && e.target.closest('a[href]');
    if (!link || !/^https?:$/.test(link.protocol)) return;
    const type = link.hasAttribute('download') || DOWNLOAD.test(link.pathname) ? 'download'
      : link.host !== location.host ? 'outbound_click' : null;
    if (type) {
      track(type, {
        url: link.href.slice(0, 2048), referrer: location.href.slice(0, 2048),
        props: { text: link.textContent.trim().slice(0, 100) },
      });
    }
  };
  d.addEventListener('click', onClick, true);
  d.addEventListener('auxclick', onClick, true);
  d.addEventListener('submit', e => {
    const form = e.target, name = form.getAttribute('data-nurture-form');
    tag(form);
    if (name) capture(form, name);
  }, true);
  if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', () => when(tagForms));
  else when(tagForms);
})();
