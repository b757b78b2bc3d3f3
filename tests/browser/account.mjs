// The citizen's account security in a real browser: with a virtual authenticator attached
// through the Chrome DevTools Protocol (CTAP2, built into the device, resident keys, user
// verification), the citizen registers a passkey on the security page, logs out, and logs in
// again with the passkey alone; the passkey shows in the list and the usage history. Then the
// residence history, linked documents and the data tracker's agency and date filters.

/**
 * @param {object} t what run.mjs shares: browser(viewport), base, check, weigh, eidLogin, who
 */
export async function accountTests({ browser, base, check, weigh, eidLogin, who }) {
  const ctx = await browser({ width: 390, height: 844 });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true,
    },
  });

  await eidLogin(page, who, 'citizen');
  await page.goto(`${base}/portal/me/security`);
  await page.locator('#passkey-add').waitFor({ state: 'visible' });
  check(await page.locator('#passkey-list li').count() === 0, 'no passkey before registering one');
  await weigh(page, 'me-security');
  await Promise.all([page.waitForNavigation(), page.click('#passkey-add')]);
  await page.locator('#passkey-msg').waitFor();
  check(await page.locator('#passkey-msg').getAttribute('data-code') === 'passkey_added',
    'the passkey is registered through the browser');
  check(await page.locator('#passkey-list li').count() === 1, 'the passkey is listed');
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  check(credentials.length === 1 && credentials[0].isResidentCredential, 'the authenticator holds one resident key');

  // Log out, then back in with the passkey: no ID number, no passcode.
  await Promise.all([page.waitForURL(/\/portal$/), page.click('form[action="/portal/logout"] button')]);
  await Promise.all([page.waitForURL(/\/authorize/), page.click('a[href="/portal/login?as=citizen"]')]);
  await page.locator('#passkey-button').waitFor({ state: 'visible' });
  await Promise.all([page.waitForURL(/\/portal\/me$/), page.click('#passkey-button')]);
  check(page.url().endsWith('/portal/me'), 'logged in again with the passkey');
  const after = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  check(after.credentials[0].signCount >= 1, 'the authenticator signed a login');

  await page.goto(`${base}/portal/me/account?lang=en`);
  const history = await page.locator('table').textContent();
  check(history.includes('Added passkey'), 'the registration is in the usage history');
  await weigh(page, 'me-account-passkey');

  // The other citizen pages: linked documents, residence history, the tracker's filters.
  await page.goto(`${base}/portal/me/residences?lang=vi`);
  check(await page.locator('#residences li').count() >= 1, 'the residence history lists the record\'s residence');
  await weigh(page, 'me-residences');
  await page.goto(`${base}/portal/me/documents`);
  check((await page.locator('h1').textContent()).includes('Giấy tờ liên kết'), 'the linked documents page opens');
  await weigh(page, 'me-documents');
  await page.goto(`${base}/portal/me/tracker`);
  const today = new Date(Date.now() + 7 * 3600e3).toISOString().slice(0, 10);
  await page.selectOption('#agency', 'register');
  await page.fill('#from', today);
  await page.fill('#to', today);
  await Promise.all([page.waitForURL(/agency=register/), page.click('#tracker-filter button')]);
  check((await page.locator('#register-reads').textContent()).includes('demo-desk'),
    'the tracker filtered by agency and today\'s date still shows the officer\'s reads');
  await weigh(page, 'me-tracker-filtered');
  await page.fill('#from', '2000-01-01');
  await page.fill('#to', '2000-01-02');
  await Promise.all([page.waitForURL(/from=2000-01-01/), page.click('#tracker-filter button')]);
  check(await page.locator('#no-register-reads').count() === 1, 'a range without reads shows none');

  // An error page says what to do next and links to it.
  await page.goto(`${base}/portal/callback?state=x&code=y`);
  check((await page.locator('#next-step').textContent()).length > 20, 'the error page says what to do next');
  await weigh(page, 'error-page');
  await ctx.close();
}
