// The officer desk's command forms and the citizen's correction requests, in headless Chromium
// (called from run.mjs, which starts the server and logs people in):
// - two desk sessions open the same person; one records a temporary absence, the other's
//   temporary-residence form is then refused as stale, shows the record as it now stands, and
//   goes through once submitted again;
// - a field is checked as it is typed (htmx) and the message appears next to it;
// - the citizen asks for a correction in the citizen portal; it reaches the desk's task list,
//   the officer applies it through the pre-filled correction form, and the citizen sees it done.

async function openPerson(page, base, id, purpose) {
  await page.goto(`${base}/portal/desk`);
  // The person page is reached by a form post (ID numbers never travel in URLs): search by ID
  // is not offered, so post the person form the search results carry.
  await page.evaluate(({ id, purpose }) => {
    const csrf = document.querySelector('input[name="csrf"]').value;
    const f = document.createElement('form');
    f.method = 'post';
    f.action = '/portal/desk/person';
    for (const [k, v] of Object.entries({ csrf, id, purpose })) {
      const i = document.createElement('input');
      i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
    }
    document.body.appendChild(f);
    f.submit();
  }, { id, purpose });
  await page.locator('#person-id').waitFor();
}

export async function deskScenario({ base, browser, eidLogin, weigh, check, officer, parent }) {
  const today = new Date(Date.now() + 7 * 3600e3).toISOString().slice(0, 10);
  const year = Number(today.slice(0, 4));
  // Officer A, desk-sized.
  const a = await browser({ width: 1280, height: 900 });
  const pa = a.pages()[0] ?? (await a.newPage());
  await eidLogin(pa, officer, 'officer');
  await openPerson(pa, base, parent.id, 'dang-ky-cu-tru');
  await weigh(pa, 'desk-person-forms');
  // The portal is boosted: the form arrives by an htmx swap, and htmx wires the new fields up
  // only when the swap settles (about 20 ms later). Typing before that sends no check: a
  // failing run showed the input event at 16 ms and the settle after it.
  const settled = pa.evaluate(() => new Promise((ok) =>
    document.addEventListener('htmx:afterSettle', () => ok(), { once: true })));
  await pa.click('#actions button[value="temporary"]');
  await settled;
  await pa.locator('#command').waitFor();
  // Validation as you type: a malformed commune code is reported next to the field.
  const commune = await pa.inputValue('#commune');
  await pa.fill('#commune', '12');
  await pa.locator('#err-commune .err').waitFor({ timeout: 5000 });
  check((await pa.locator('#err-commune .err').getAttribute('data-code')) === 'address_commune_code_malformed',
    'a malformed commune code is reported as it is typed');
  await pa.fill('#commune', commune);
  await pa.locator('#err-commune .err').waitFor({ state: 'detached', timeout: 5000 });
  check(true, 'a valid commune code clears the message');
  await pa.fill('#detail', 'Số 9 ngõ 12');
  await pa.fill('#until', `${year + 1}-06-30`);
  await weigh(pa, 'desk-temporary-form');

  // Officer B, another session, records a temporary absence for the same person meanwhile.
  const b = await browser({ width: 1280, height: 900 });
  const pb = b.pages()[0] ?? (await b.newPage());
  await eidLogin(pb, officer, 'officer');
  await openPerson(pb, base, parent.id, 'dang-ky-cu-tru');
  await pb.click('#actions button[value="absence"]');
  await pb.locator('#command').waitFor();
  await pb.fill('#until', `${year}-12-31`);
  await pb.fill('#destination', 'Thành phố Hồ Chí Minh');
  await pb.fill('#absence_reason', 'Đi làm');
  await pb.click('#command button');
  await pb.locator('#notice').waitFor();
  check((await pb.locator('#notice').getAttribute('data-code')) === 'recorded', 'the second officer records an absence');

  // Officer A submits: refused as stale, with the record as it now stands.
  await pa.click('#command button');
  await pa.locator('#form-error').waitFor();
  check((await pa.locator('#form-error').getAttribute('data-code')) === 'stale_version',
    'the concurrent change is reported, not overwritten');
  check(await pa.locator('#current').count() === 1, 'the current record is shown');
  check((await pa.inputValue('#detail')) === 'Số 9 ngõ 12', 'what was typed is kept');
  await weigh(pa, 'desk-stale');
  await pa.click('#command button');
  await pa.locator('#notice').waitFor();
  check((await pa.locator('#notice').getAttribute('data-code')) === 'recorded', 'submitted again, it is recorded');
  const residences = await pa.locator('#residences').textContent();
  check(residences.includes('Số 9 ngõ 12') && residences.includes('Tạm vắng'),
    'the residence history shows the temporary residence and the absence');
  await b.close();

  // The citizen asks for a correction.
  const c = await browser({ width: 390, height: 844 });
  const pc = c.pages()[0] ?? (await c.newPage());
  await eidLogin(pc, parent, 'citizen');
  await pc.goto(`${base}/portal/me/requests`);
  await pc.selectOption('#field', 'religion');
  await pc.fill('#proposed', 'Phật giáo');
  await pc.fill('#explanation', 'Tôi theo đạo Phật; có giấy xác nhận của chùa');
  await pc.click('#new-request button');
  await pc.locator('#notice').waitFor();
  check((await pc.locator('#notice').getAttribute('data-code')) === 'request_sent', 'the citizen sends a correction request');
  await weigh(pc, 'me-requests');

  // It reaches the desk as a task; the officer applies it through the correction form.
  await pa.goto(`${base}/portal/desk/tasks`);
  await pa.locator('#tasks').waitFor();
  check((await pa.locator('#tasks').textContent()).includes(parent.id), 'the request is on the desk\'s task list');
  await weigh(pa, 'desk-tasks');
  await pa.click('#tasks form button');
  await pa.locator('#proposed').waitFor();
  await weigh(pa, 'desk-task');
  await pa.click('#apply');
  await pa.locator('#command').waitFor();
  check((await pa.inputValue('#value')) === 'Phật giáo', 'the correction form is pre-filled from the request');
  await pa.fill('#legal_basis', 'Điều 6 Nghị định 70/2024/NĐ-CP');
  await pa.click('#command button');
  await pa.locator('#notice').waitFor();
  check((await pa.locator('#history').textContent()).includes('field_corrected'), 'the correction is in the history');
  await a.close();
  await pc.goto(`${base}/portal/me/requests`);
  check(await pc.locator('tr[data-status="applied"]').count() === 1, 'the citizen sees the request applied');
  await c.close();
}
