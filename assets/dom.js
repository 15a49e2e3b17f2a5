// What every dashboard script shares: calling the admin API, and building DOM nodes without
// HTML strings (everything that came from a webhook is untrusted). Loaded before the others,
// which read `window.Dashboard`; a 401 outside the login is announced as `gpt:unauthorized`.
'use strict';

(function () {
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** Calls the admin API; the custom header marks the request as the dashboard's own (CSRF). */
  async function api(method, path, body) {
    const init = {
      method,
      credentials: 'same-origin',
      headers: { 'X-Requested-With': 'git-push-tracker', Accept: 'application/json' },
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch('/api/admin' + path, init);
    } catch (e) {
      throw new ApiError(0, 'network_error', 'The server cannot be reached. Check your connection and try again.');
    }
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      const err = (data && data.error) || {};
      if (res.status === 401 && path !== '/login') document.dispatchEvent(new CustomEvent('gpt:unauthorized'));
      throw new ApiError(res.status, err.code || 'error', err.message || 'Request failed (' + res.status + ').');
    }
    return data;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return node;
  }

  /** The head line of a push in a list: its branch and author, then what the list adds. */
  function pushHead(push, ...more) {
    return el(
      'div',
      { class: 'push-head' },
      el('span', { class: 'branch', text: push.branch }),
      el('span', { class: 'author', text: push.author }),
      ...more,
    );
  }

  window.Dashboard = Object.freeze({ api, el, pushHead, ApiError });
})();
