// Asking the history on the dashboard: per project, a search box with filters over its feed, a
// push's detail with its commits and compare link, an activity chart (embedded SVG, no
// library) and a digest of a chosen range, all through /api/admin/projects/{name}/...
// Everything that came from a webhook is untrusted: the DOM is built with createElement and
// textContent only. app.js calls window.PushHistory.section(name) for each project card.
'use strict';

(function () {
  const DAY_MS = 86400000;
  const SVG = 'http://www.w3.org/2000/svg';

  const { api, el, pushHead } = window.Dashboard;
  const get = (path) => api('GET', path);

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    for (const c of children) node.append(c);
    return node;
  }

  function plural(n, one, many) {
    return n + ' ' + (n === 1 ? one : many);
  }

  function isoDay(ms) {
    return new Date(ms).toISOString().slice(0, 10);
  }

  function field(label, input) {
    return el('label', { class: 'history-field' }, el('span', { text: label }), input);
  }

  /** The query string of the filter form (only the fields that are filled). */
  function filterQuery(form, extra) {
    const params = new URLSearchParams();
    for (const name of ['q', 'branch', 'author', 'repository', 'since', 'until']) {
      const value = form.elements[name].value.trim();
      if (value) params.append(name, value);
    }
    for (const [k, v] of Object.entries(extra || {})) params.set(k, v);
    return params.toString();
  }

  function safeUrl(url) {
    return typeof url === 'string' && /^https?:\/\//i.test(url) ? url : null;
  }

  async function showDetail(name, id, box) {
    box.replaceChildren(el('p', { class: 'status', text: 'Loading...' }));
    box.hidden = false;
    let push;
    try {
      push = await get('/projects/' + encodeURIComponent(name) + '/pushes/' + encodeURIComponent(id));
    } catch (e) {
      box.replaceChildren(el('p', { class: 'error', text: 'Could not load the push: ' + e.message }));
      return;
    }
    const compare = safeUrl(push.compareUrl);
    box.replaceChildren(
      el('h5', { text: push.refType + ' ' + push.branch + ' in ' + push.repository }),
      el('p', { class: 'hint', text: push.author + ', ' + new Date(push.pushedAt).toLocaleString() + ', ' + push.commitCount + (push.commitCount === 1 ? ' commit' : ' commits') }),
      compare ? el('p', {}, el('a', { class: 'compare', href: compare, target: '_blank', rel: 'noopener noreferrer', text: 'Compare changes' })) : null,
      el('p', { class: 'summary', text: push.summary }),
      el(
        'ol',
        { class: 'commit-list' },
        ...push.commits.map((c) => el(
          'li',
          { class: 'commit' },
          el('code', { text: c.sha.slice(0, 10) }),
          ' ',
          el('span', { class: 'commit-message', text: c.message.split('\n')[0] }),
          ' ',
          el('span', { class: 'author', text: c.author }),
        )),
      ),
      el('button', { type: 'button', class: 'secondary small', text: 'Close', onclick: () => { box.hidden = true; } }),
    );
  }

  async function search(name, form, results, detail) {
    results.replaceChildren(el('p', { class: 'status', text: 'Searching...' }));
    let page;
    try {
      page = await get('/projects/' + encodeURIComponent(name) + '/history?' + filterQuery(form, { limit: '20' }));
    } catch (e) {
      results.replaceChildren(el('p', { class: 'error', text: e.message }));
      return;
    }
    const total = page.pagination.total;
    results.replaceChildren(
      el('p', { class: 'hint history-total', text: plural(total, 'push matches', 'pushes match') }),
      el(
        'ol',
        { class: 'history-results' },
        ...page.pushes.map((p) => el(
          'li',
          { class: 'history-push', 'data-push': p.id },
          pushHead(
            p,
            el('span', { class: 'repository', text: p.repository }),
            el('time', { datetime: p.pushedAt, text: isoDay(Date.parse(p.pushedAt)) }),
            el('button', { type: 'button', class: 'secondary small detail-button', text: 'Details', onclick: () => showDetail(name, p.id, detail) }),
          ),
          el('p', { class: 'summary', text: p.summary }),
        )),
      ),
    );
  }

  async function digest(name, form, out) {
    out.hidden = false;
    out.replaceChildren(el('p', { class: 'status', text: 'Writing the digest...' }));
    const now = Date.now();
    const extra = {};
    if (!form.elements.since.value) extra.since = isoDay(now - 7 * DAY_MS);
    let d;
    try {
      d = await get('/projects/' + encodeURIComponent(name) + '/digest?' + filterQuery(form, extra));
    } catch (e) {
      out.replaceChildren(el('p', { class: 'error', text: e.message }));
      return;
    }
    out.replaceChildren(
      el('h5', { text: 'Digest ' + d.since.slice(0, 10) + ' to ' + d.until.slice(0, 10) }),
      el('p', { class: 'hint digest-counts', text: plural(d.pushCount, 'push', 'pushes') + ', ' + plural(d.commitCount, 'commit', 'commits') + ' (' + d.summarySource + ')' }),
      el('pre', { class: 'digest-summary', text: d.summary }),
    );
  }

  /** Pushes per day as bars in an SVG that scales to the card's width. */
  function chart(buckets) {
    const w = 720;
    const h = 120;
    const max = Math.max(1, ...buckets.map((b) => b.pushes));
    const bw = w / Math.max(1, buckets.length);
    const bars = buckets.map((b, i) => {
      const bh = Math.round((b.pushes / max) * (h - 16));
      return svg(
        'rect',
        { x: (i * bw).toFixed(2), y: h - bh, width: Math.max(1, bw - 1).toFixed(2), height: bh, class: 'bar' },
        svg('title', {}, document.createTextNode(b.key + ': ' + b.pushes + ' pushes, ' + b.commits + ' commits')),
      );
    });
    const label = (x, text, anchor) => svg('text', { x, y: 11, 'text-anchor': anchor, class: 'axis' }, document.createTextNode(text));
    const first = buckets.length ? buckets[0].key : '';
    const last = buckets.length ? buckets[buckets.length - 1].key : '';
    return svg(
      'svg',
      { viewBox: '0 0 ' + w + ' ' + h, class: 'activity-chart', role: 'img', 'aria-label': 'Pushes per day, ' + first + ' to ' + last + ', at most ' + max + ' a day', preserveAspectRatio: 'none' },
      label(0, first, 'start'),
      label(w, last + ' (max ' + max + ')', 'end'),
      ...bars,
    );
  }

  async function loadActivity(name, select, box) {
    const since = isoDay(Date.now() - 89 * DAY_MS);
    const params = new URLSearchParams({ since, groupBy: 'day' });
    const kind = select.value.split(':', 1)[0];
    if (kind === 'branch' || kind === 'author') params.set(kind, select.value.slice(kind.length + 1));
    let activity;
    try {
      activity = await get('/projects/' + encodeURIComponent(name) + '/activity?' + params);
    } catch (e) {
      box.replaceChildren(el('p', { class: 'error', text: 'Could not load the activity: ' + e.message }));
      return;
    }
    box.replaceChildren(chart(activity.buckets));
  }

  /** Fills the chart's choice of all pushes, one branch or one author (the busiest ones). */
  async function loadChoices(name, select) {
    const since = isoDay(Date.now() - 89 * DAY_MS);
    for (const by of ['branch', 'author']) {
      try {
        const a = await get('/projects/' + encodeURIComponent(name) + '/activity?' + new URLSearchParams({ since, groupBy: by }));
        for (const b of a.buckets.slice(0, 8)) {
          select.append(el('option', { value: by + ':' + b.key, text: (by === 'branch' ? 'Branch ' : 'Author ') + b.key }));
        }
      } catch (e) {
        // The chart of all pushes still works; the choices are a convenience.
      }
    }
  }

  function section(name) {
    const results = el('div', { class: 'history-results-box' });
    const detail = el('div', { class: 'push-detail card' });
    detail.hidden = true;
    const digestBox = el('div', { class: 'digest' });
    digestBox.hidden = true;
    const input = (n, attrs) => el('input', Object.assign({ name: n, autocomplete: 'off' }, attrs));
    const form = el(
      'form',
      { class: 'history-form', role: 'search' },
      field('Search', input('q', { type: 'search', maxlength: '1000', placeholder: 'auth*, deploy', class: 'history-q' })),
      field('Branch', input('branch', { maxlength: '1024' })),
      field('Author', input('author', { maxlength: '256' })),
      field('Repository', input('repository', { maxlength: '512', placeholder: 'owner/name' })),
      field('Since', input('since', { type: 'date' })),
      field('Until', input('until', { type: 'date' })),
      el(
        'div',
        { class: 'actions' },
        el('button', { type: 'submit', class: 'history-search', text: 'Search' }),
        el('button', { type: 'button', class: 'secondary history-digest', text: 'Digest', onclick: () => digest(name, form, digestBox) }),
      ),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      search(name, form, results, detail);
    });
    const select = el('select', { class: 'activity-by', 'aria-label': 'Chart of' }, el('option', { value: 'all', text: 'All pushes' }));
    const chartBox = el('div', { class: 'activity' });
    select.addEventListener('change', () => loadActivity(name, select, chartBox));
    loadChoices(name, select);
    loadActivity(name, select, chartBox);
    return el(
      'details',
      { class: 'history' },
      el('summary', { text: 'History: search, activity, digest' }),
      el('div', { class: 'history-chart-head' }, el('h5', { text: 'Pushes per day, last 90 days' }), select),
      chartBox,
      form,
      digestBox,
      detail,
      results,
    );
  }

  window.PushHistory = { section };
})();
