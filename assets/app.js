// The dashboard: log in, then manage projects, keys and pushes through /api/admin.
// Everything that came from a webhook is untrusted: the DOM is built with createElement and
// textContent only, never from HTML strings.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  const { api, el, pushHead } = window.Dashboard;

  function show(node, on) {
    node.hidden = !on;
  }

  function banner(message) {
    const b = $('banner');
    b.textContent = message || '';
    show(b, Boolean(message));
  }

  function when(iso) {
    if (!iso) return 'never';
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  // ---- the one-time reveal dialog ----

  function reveal(title, context, value) {
    $('reveal-title').textContent = title;
    $('reveal-context').textContent = context;
    $('reveal-value').textContent = value;
    $('reveal-copied').textContent = '';
    const dialog = $('reveal');
    if (typeof dialog.showModal === 'function') dialog.showModal();
    else dialog.setAttribute('open', '');
    selectValue();
  }

  function selectValue() {
    const range = document.createRange();
    range.selectNodeContents($('reveal-value'));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  async function copyValue() {
    const text = $('reveal-value').textContent;
    try {
      await navigator.clipboard.writeText(text);
      $('reveal-copied').textContent = 'Copied.';
    } catch (e) {
      // Plain-http deployments have no clipboard API: select it for Ctrl+C instead.
      selectValue();
      $('reveal-copied').textContent = 'Selected: press Ctrl+C (or ⌘C) to copy.';
    }
  }

  function closeReveal() {
    $('reveal-value').textContent = '';
    const dialog = $('reveal');
    if (typeof dialog.close === 'function') dialog.close();
    else dialog.removeAttribute('open');
  }

  // ---- login ----

  function showLogin() {
    show($('boot'), false);
    show($('app'), false);
    show($('logout'), false);
    show($('login'), true);
    $('login-token').focus();
  }

  /** Runs a form's action with its button disabled; a failure is shown in the form's error box. */
  async function submitting(buttonId, errorBoxId, action) {
    const errorBox = $(errorBoxId);
    show(errorBox, false);
    $(buttonId).disabled = true;
    try {
      await action();
    } catch (e) {
      errorBox.textContent = e.message;
      show(errorBox, true);
    } finally {
      $(buttonId).disabled = false;
    }
  }

  async function login(ev) {
    ev.preventDefault();
    await submitting('login-submit', 'login-error', async () => {
      await api('POST', '/login', { token: $('login-token').value.trim() });
      $('login-token').value = '';
      await start();
    });
  }

  async function logout() {
    try {
      await api('POST', '/logout');
    } catch (e) {
      // The session is gone either way once the cookie is cleared.
    }
    if (window.gptLive) window.gptLive.stop();
    showLogin();
  }

  // ---- projects ----

  async function createProject(ev) {
    ev.preventDefault();
    await submitting('new-project-submit', 'new-project-error', async () => {
      const input = $('new-project-name');
      const p = await api('POST', '/projects', { name: input.value.trim() });
      input.value = '';
      reveal('Webhook secret for ' + p.name, 'Webhook URL: ' + p.webhookUrl, p.webhookSecret);
      await loadProjects();
    });
  }

  /** Rebuilds every project card; `projects` is the list when the caller has it already. */
  async function loadProjects(projects) {
    const status = $('projects-status');
    const list = $('projects');
    if (!Array.isArray(projects)) {
      status.className = 'status';
      status.textContent = 'Loading...';
      show(status, true);
      try {
        projects = await api('GET', '/projects');
      } catch (e) {
        status.className = 'status error';
        status.textContent = 'Could not load projects: ' + e.message;
        return;
      }
    }
    list.replaceChildren(...projects.map(projectCard));
    if (projects.length === 0) {
      status.className = 'status';
      status.textContent = 'No projects yet. Create one above to get a webhook URL.';
      show(status, true);
    } else {
      show(status, false);
    }
  }

  function projectCard(p) {
    const keys = el('div', { class: 'keys' });
    const feed = el('div', { class: 'feed' });
    const label = el('input', { class: 'key-label', name: 'label', maxlength: '100', placeholder: 'label, e.g. slack-bot', 'aria-label': 'Key label' });
    const keyForm = el(
      'form',
      { class: 'key-form inline', onsubmit: (ev) => { ev.preventDefault(); createKey(p.name, label, keyForm, keys); } },
      label,
      el('button', { type: 'submit', class: 'create-key', text: 'Create key' }),
    );
    keyForm.hidden = true;
    const card = el(
      'article',
      { class: 'card project', 'data-project': p.name },
      el(
        'div',
        { class: 'project-head' },
        el('h3', { text: p.name }),
        el(
          'div',
          { class: 'actions' },
          el('button', { type: 'button', class: 'add-key', text: '+ Key', onclick: () => { keyForm.hidden = false; label.focus(); } }),
          el('button', { type: 'button', class: 'secondary', text: 'Rotate secret', onclick: () => rotateSecret(p.name) }),
          el('button', { type: 'button', class: 'danger', text: 'Delete', onclick: () => deleteProject(p.name) }),
        ),
      ),
      el('p', { class: 'webhook' }, 'Webhook URL: ', el('code', { class: 'webhook-url', text: p.webhookUrl })),
      countsLine(p),
      el('h4', { text: 'API keys' }),
      keyForm,
      keys,
      el('h4', { text: 'Recent pushes' }),
      feed,
      window.PushHistory ? window.PushHistory.section(p.name) : null,
    );
    card.dataset.counts = countsKey(p);
    loadKeys(p.name, keys);
    loadPushes(p.name, feed);
    // Other parts of the dashboard (notifications.js) add their own sections to the card.
    document.dispatchEvent(new CustomEvent('gpt:project-card', { detail: { card, name: p.name } }));
    return card;
  }

  function countsLine(p) {
    return el(
      'p',
      { class: 'counts' },
      el('span', { class: 'count', text: p.pushes + ' pushes' }),
      el('span', { class: 'count pending' + (p.pending > 0 ? ' warn' : ''), text: p.pending + ' pending' }),
      el('span', { class: 'count failed' + (p.failed > 0 ? ' bad' : ''), text: p.failed + ' failed' }),
    );
  }

  /** Changes whenever a push arrives or a summary is finished, failed or retried. */
  function countsKey(p) {
    return [p.pushes, p.pending, p.failed].join('/');
  }

  // ---- live updates ----

  // The owner's event stream (live.js) calls refreshLive when a push arrives or a summary is
  // finished, failed or retried; nothing polls.
  let liveBusy = false;
  let liveAgain = false;

  /**
   * Brings counts and push feeds up to date in place, so a half-typed project name or key label
   * is never wiped. Cards are rebuilt only when projects were added or deleted elsewhere (the
   * CLI, another tab), and then only while no key form is open. A change announced during a
   * refresh is caught by one more refresh after it.
   */
  async function refreshLive() {
    if (liveBusy) {
      liveAgain = true;
      return;
    }
    if (document.hidden || $('app').hidden || $('reveal').hasAttribute('open')) return;
    liveBusy = true;
    try {
      const projects = await api('GET', '/projects');
      const cards = new Map(
        Array.from(document.querySelectorAll('#projects article.project'), (c) => [c.dataset.project, c]),
      );
      const sameProjects = projects.length === cards.size && projects.every((p) => cards.has(p.name));
      if (!sameProjects) {
        const typing = Array.from(document.querySelectorAll('#projects .key-form')).some((f) => !f.hidden);
        if (!typing) await loadProjects(projects);
        return;
      }
      for (const p of projects) {
        const card = cards.get(p.name);
        const counts = countsKey(p);
        if (card.dataset.counts === counts) continue;
        card.dataset.counts = counts;
        card.querySelector('.counts').replaceWith(countsLine(p));
        await loadPushes(p.name, card.querySelector('.feed'), true);
      }
    } catch (e) {
      // Quietly: the next change tries again, and a lost session already shows the login form.
    } finally {
      liveBusy = false;
      if (liveAgain) {
        liveAgain = false;
        refreshLive();
      }
    }
  }

  async function rotateSecret(name) {
    if (!confirm('Replace the webhook secret of ' + name + '? Deliveries signed with the old one are refused from now on.')) return;
    try {
      const p = await api('POST', '/projects/' + encodeURIComponent(name) + '/rotate-secret');
      reveal('New webhook secret for ' + p.name, 'Webhook URL: ' + p.webhookUrl, p.webhookSecret);
    } catch (e) {
      banner('Could not rotate the secret: ' + e.message);
    }
  }

  async function deleteProject(name) {
    if (!confirm('Delete ' + name + ' with all its keys and pushes? This cannot be undone.')) return;
    try {
      await api('DELETE', '/projects/' + encodeURIComponent(name));
      await loadProjects();
    } catch (e) {
      banner('Could not delete the project: ' + e.message);
    }
  }

  // ---- keys ----

  function placeholder(box, text, cls) {
    box.replaceChildren(el('p', { class: 'status' + (cls ? ' ' + cls : ''), text }));
  }

  async function loadKeys(name, box) {
    placeholder(box, 'Loading...');
    let keys;
    try {
      keys = await api('GET', '/projects/' + encodeURIComponent(name) + '/keys');
    } catch (e) {
      placeholder(box, 'Could not load keys: ' + e.message, 'error');
      return;
    }
    if (keys.length === 0) {
      placeholder(box, 'No keys yet. Click + Key to create one.');
      return;
    }
    box.replaceChildren(
      el(
        'ul',
        { class: 'key-list' },
        ...keys.map((k) =>
          el(
            'li',
            { class: k.revoked ? 'revoked' : '' },
            el('code', { text: k.prefix + '…' }),
            el('span', { class: 'label', text: k.label || '(no label)' }),
            el('span', { class: 'meta', text: 'created ' + when(k.createdAt) + ' · last used ' + when(k.lastUsedAt) }),
            k.revoked
              ? el('span', { class: 'badge failed', text: 'revoked' })
              : el('button', { type: 'button', class: 'danger small', text: 'Revoke', onclick: () => revokeKey(name, k, box) }),
          ),
        ),
      ),
    );
  }

  async function createKey(name, input, form, box) {
    try {
      const k = await api('POST', '/projects/' + encodeURIComponent(name) + '/keys', { label: input.value.trim() });
      input.value = '';
      form.hidden = true;
      reveal('API key for ' + name, 'Label: ' + (k.label || '(none)') + ' · use it as Authorization: Bearer <key>', k.key);
      await loadKeys(name, box);
    } catch (e) {
      banner('Could not create a key: ' + e.message);
    }
  }

  async function revokeKey(name, key, box) {
    if (!confirm('Revoke key ' + key.prefix + '… (' + (key.label || 'no label') + ')? Clients using it stop working at once.')) return;
    try {
      await api('DELETE', '/projects/' + encodeURIComponent(name) + '/keys/' + encodeURIComponent(String(key.id)));
      await loadKeys(name, box);
    } catch (e) {
      banner('Could not revoke the key: ' + e.message);
    }
  }

  // ---- pushes ----

  /** Shows the newest pushes; `quiet` (live updates) keeps what is shown until the new list is in. */
  async function loadPushes(name, box, quiet) {
    if (!quiet) placeholder(box, 'Loading...');
    let page;
    try {
      page = await api('GET', '/projects/' + encodeURIComponent(name) + '/pushes?limit=20');
    } catch (e) {
      if (!quiet) placeholder(box, 'Could not load pushes: ' + e.message, 'error');
      return;
    }
    if (page.pushes.length === 0) {
      placeholder(box, 'No pushes yet. Add the webhook URL to your repository and push.');
      return;
    }
    box.replaceChildren(el('ol', { class: 'push-list' }, ...page.pushes.map((p) => pushItem(name, p, box))));
  }

  function pushItem(name, p, box) {
    const status = p.summaryStatus;
    return el(
      'li',
      { class: 'push', 'data-push': p.id },
      pushHead(
        p,
        el('span', { class: 'commits', text: p.commitCount + (p.commitCount === 1 ? ' commit' : ' commits') }),
        el('span', { class: 'badge ' + status, text: status }),
        el('time', { datetime: p.pushedAt, text: when(p.pushedAt) }),
      ),
      el('p', { class: 'summary', text: p.summary }),
      p.lastError ? el('p', { class: 'error last-error', text: 'Last error: ' + p.lastError }) : null,
      status === 'failed'
        ? el('button', { type: 'button', class: 'secondary small', text: 'Re-summarize', onclick: () => resummarize(name, p.id, box) })
        : null,
    );
  }

  async function resummarize(name, id, box) {
    try {
      await api('POST', '/pushes/' + encodeURIComponent(id) + '/resummarize');
      await loadPushes(name, box);
    } catch (e) {
      banner('Could not queue the push: ' + e.message);
    }
  }

  // ---- start ----

  async function start() {
    banner('');
    let info;
    try {
      info = await api('GET', '/info');
    } catch (e) {
      if (e.status !== 401) {
        show($('boot'), true);
        $('boot').className = 'status error';
        $('boot').textContent = 'The dashboard cannot start: ' + e.message;
      }
      return;
    }
    for (const span of document.querySelectorAll('.public-url')) span.textContent = info.publicUrl;
    for (const span of document.querySelectorAll('.summarizer')) {
      span.textContent = info.summarizer === 'builtin' ? 'the builtin offline summarizer' : 'the model ' + info.summarizer;
    }
    show($('boot'), false);
    show($('login'), false);
    show($('app'), true);
    show($('logout'), true);
    if (window.gptLive) window.gptLive.start();
    await loadProjects();
  }

  document.addEventListener('DOMContentLoaded', () => {
    // Until the server says otherwise, examples show where this page was loaded from.
    for (const span of document.querySelectorAll('.public-url')) span.textContent = location.origin;
    document.addEventListener('gpt:unauthorized', showLogin);
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    $('new-project').addEventListener('submit', createProject);
    $('refresh').addEventListener('click', () => loadProjects());
    window.gptDashboard = { refresh: refreshLive };
    // Changes announced while the tab was hidden were not shown: catch up when it is back.
    document.addEventListener('visibilitychange', refreshLive);
    $('reveal-value').addEventListener('click', selectValue);
    $('reveal-copy').addEventListener('click', copyValue);
    $('reveal-close').addEventListener('click', closeReveal);
    start();
  });
})();
