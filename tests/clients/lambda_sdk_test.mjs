// The AWS SDK for JavaScript v3 (@aws-sdk/client-lambda), unchanged, against a wispd with auth
// on: every request SigV4-signed by the SDK with a Wisp key, every answer parsed by the SDK.
// Driven by tests/e2e/test_lambda_sdk.py, which starts wispd, makes the key and builds the zips;
// this script exits non-zero at the first check that fails.
//
// Environment: WISP_ENDPOINT, WISP_KEY_ID, WISP_KEY_SECRET, WISP_ZIPS (a directory holding
// app.zip, app2.zip, and the bad packages named in BAD_ZIPS), WISP_MAX_ZIP_BYTES.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import {
  CreateAliasCommand,
  CreateFunctionCommand,
  DeleteAliasCommand,
  DeleteFunctionCommand,
  GetFunctionCommand,
  GetFunctionConfigurationCommand,
  InvokeCommand,
  LambdaClient,
  ListFunctionsCommand,
  ListVersionsByFunctionCommand,
  PublishVersionCommand,
  UpdateAliasCommand,
  UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand,
  waitUntilFunctionActiveV2,
} from '@aws-sdk/client-lambda';

const endpoint = process.env.WISP_ENDPOINT;
const zips = process.env.WISP_ZIPS;
const maxZipBytes = Number(process.env.WISP_MAX_ZIP_BYTES);
const prefix = `sdk-${process.pid}-`;

function client(accessKeyId, secretAccessKey) {
  return new LambdaClient({
    endpoint,
    region: 'us-east-1',
    credentials: {accessKeyId, secretAccessKey},
    maxAttempts: 1,  // an answer is final: no retry hides a wrong one
  });
}
const lambda = client(process.env.WISP_KEY_ID, process.env.WISP_KEY_SECRET);
const readZip = (name) => fs.readFileSync(path.join(zips, name));
const decode = (bytes) => JSON.parse(Buffer.from(bytes).toString('utf8'));
const encode = (value) => Buffer.from(JSON.stringify(value));

async function expectError(promise, name, status) {
  try {
    await promise;
  } catch (error) {
    assert.equal(error.name, name, `${error.name}: ${error.message}`);
    assert.equal(error.$metadata.httpStatusCode, status);
    return error;
  }
  assert.fail(`expected ${name}, the call succeeded`);
}

const checks = [];
const check = (name, run) => checks.push({name, run});

function createInput(name, zip = 'app.zip', extra = {}) {
  return {
    FunctionName: name,
    Runtime: 'nodejs20.x',
    Handler: 'src/handlers/main.handler',
    Role: 'arn:aws:iam::000000000000:role/ignored',
    Code: {ZipFile: readZip(zip)},
    Timeout: 10,
    MemorySize: 256,
    Environment: {Variables: {GREETING: 'hello'}},
    PackageType: 'Zip',
    Architectures: ['x86_64'],
    ...extra,
  };
}

const main = `${prefix}main`;

check('create from a zip with node_modules and nested folders, then wait for Active', async () => {
  const created = await lambda.send(new CreateFunctionCommand(createInput(main)));
  assert.equal(created.$metadata.httpStatusCode, 201);
  assert.equal(created.FunctionName, main);
  assert.ok(['Pending', 'Active'].includes(created.State), created.State);
  assert.equal(created.CodeSize, readZip('app.zip').length);
  assert.equal(created.CodeSha256, process.env.WISP_APP_SHA256);
  assert.equal(created.Handler, 'src/handlers/main.handler');
  assert.equal(created.Timeout, 10);
  assert.equal(created.MemorySize, 256);
  assert.deepEqual(created.Environment.Variables, {GREETING: 'hello'});
  const waited = await waitUntilFunctionActiveV2(
      {client: lambda, maxWaitTime: 60, minDelay: 1, maxDelay: 1}, {FunctionName: main});
  assert.equal(waited.state, 'SUCCESS');
});

check('get: configuration and a Code.Location serving the package back', async () => {
  const got = await lambda.send(new GetFunctionCommand({FunctionName: main}));
  assert.equal(got.Configuration.State, 'Active');
  assert.equal(got.Configuration.LastUpdateStatus, 'Successful');
  assert.equal(got.Configuration.PackageType, 'Zip');
  assert.deepEqual(got.Configuration.Architectures, ['x86_64']);
  assert.equal(got.Code.RepositoryType, 'S3');
  assert.ok(got.Code.Location.endsWith(`/2015-03-31/functions/${main}/code-zip`),
            got.Code.Location);
  const byArn = await lambda.send(
      new GetFunctionConfigurationCommand({FunctionName: got.Configuration.FunctionArn}));
  assert.equal(byArn.FunctionName, main);
});

check('list with paging: MaxItems and NextMarker walk every function once', async () => {
  for (let i = 0; i < 3; ++i) {
    await lambda.send(new CreateFunctionCommand(createInput(`${prefix}page-${i}`)));
  }
  const seen = [];
  let Marker;
  let pages = 0;
  do {
    const page = await lambda.send(new ListFunctionsCommand({MaxItems: 2, Marker}));
    assert.ok(page.Functions.length <= 2);
    seen.push(...page.Functions.map((f) => f.FunctionName));
    Marker = page.NextMarker;
    ++pages;
  } while (Marker);
  const mine = seen.filter((name) => name.startsWith(prefix));
  assert.deepEqual(mine, [main, `${prefix}page-0`, `${prefix}page-1`, `${prefix}page-2`].sort());
  assert.equal(new Set(seen).size, seen.length);
  assert.ok(pages >= 2);
});

check('invoke RequestResponse: the package\'s modules ran, and Tail logs decode', async () => {
  const out = await lambda.send(new InvokeCommand(
      {FunctionName: main, Payload: encode({who: 'sdk'}), LogType: 'Tail'}));
  assert.equal(out.StatusCode, 200);
  assert.equal(out.FunctionError, undefined);
  assert.equal(out.ExecutedVersion, '$LATEST');
  assert.deepEqual(decode(out.Payload),
                   {message: 'hello sdk', padded: '00042', version: 1, event: {who: 'sdk'}});
  const log = Buffer.from(out.LogResult, 'base64').toString('utf8');
  assert.match(log, /START RequestId: /);
  assert.match(log, /handling for sdk/);
  assert.match(log, /REPORT RequestId: /);
});

check('invoke Event (202) and DryRun (204)', async () => {
  const queued = await lambda.send(new InvokeCommand(
      {FunctionName: main, InvocationType: 'Event', Payload: encode({who: 'later'})}));
  assert.equal(queued.StatusCode, 202);
  const dry = await lambda.send(new InvokeCommand({FunctionName: main, InvocationType: 'DryRun'}));
  assert.equal(dry.StatusCode, 204);
});

check('invoke: a thrown error is X-Amz-Function-Error Unhandled with Lambda\'s document', async () => {
  const out = await lambda.send(new InvokeCommand({FunctionName: main, Payload: encode({fail: true})}));
  assert.equal(out.StatusCode, 200);
  assert.equal(out.FunctionError, 'Unhandled');
  const error = decode(out.Payload);
  assert.equal(error.errorMessage, 'asked to fail');
  assert.equal(error.errorType, 'Error');
});

check('update code: new CodeSha256 and CodeSize, Successful, the new code runs', async () => {
  const dry = await lambda.send(
      new UpdateFunctionCodeCommand({FunctionName: main, ZipFile: readZip('app2.zip'), DryRun: true}));
  assert.equal(dry.CodeSha256, process.env.WISP_APP_SHA256);  // nothing changed
  const updated = await lambda.send(
      new UpdateFunctionCodeCommand({FunctionName: main, ZipFile: readZip('app2.zip')}));
  assert.equal(updated.CodeSha256, process.env.WISP_APP2_SHA256);
  assert.equal(updated.CodeSize, readZip('app2.zip').length);
  assert.equal(updated.LastUpdateStatus, 'Successful');
  const out = await lambda.send(new InvokeCommand({FunctionName: main, Payload: encode({who: 'v2'})}));
  assert.equal(decode(out.Payload).version, 2);
});

check('update configuration: timeout, memory and environment', async () => {
  const updated = await lambda.send(new UpdateFunctionConfigurationCommand(
      {FunctionName: main, Timeout: 20, MemorySize: 512, Environment: {Variables: {GREETING: 'hi'}}}));
  assert.equal(updated.Timeout, 20);
  assert.equal(updated.MemorySize, 512);
  const out = await lambda.send(new InvokeCommand({FunctionName: main, Payload: encode({who: 'env'})}));
  assert.equal(decode(out.Payload).message, 'hi env');
});

check('ResourceNotFoundException', async () => {
  await expectError(lambda.send(new GetFunctionCommand({FunctionName: `${prefix}missing`})),
                    'ResourceNotFoundException', 404);
  await expectError(lambda.send(new InvokeCommand({FunctionName: `${prefix}missing`})),
                    'ResourceNotFoundException', 404);
});

check('ResourceConflictException: the name is taken', async () => {
  await expectError(lambda.send(new CreateFunctionCommand(createInput(main))),
                    'ResourceConflictException', 409);
});

check('InvalidParameterValueException: Image packages, S3 code, bad values', async () => {
  await expectError(lambda.send(new CreateFunctionCommand(
                        {FunctionName: `${prefix}image`, PackageType: 'Image',
                         Code: {ImageUri: 'example/image:latest'}, Role: 'r'})),
                    'InvalidParameterValueException', 400);
  await expectError(lambda.send(new CreateFunctionCommand(
                        {...createInput(`${prefix}s3`), Code: {S3Bucket: 'b', S3Key: 'k'}})),
                    'InvalidParameterValueException', 400);
  await expectError(lambda.send(new CreateFunctionCommand(
                        createInput(`${prefix}arm`, 'app.zip', {Architectures: ['arm64']}))),
                    'InvalidParameterValueException', 400);
  await expectError(lambda.send(new UpdateFunctionConfigurationCommand({FunctionName: main, Timeout: 0})),
                    'InvalidParameterValueException', 400);
});

check('InvalidRequestContentException: an Invoke payload that is not JSON', async () => {
  await expectError(lambda.send(new InvokeCommand({FunctionName: main, Payload: Buffer.from('{oops')})),
                    'InvalidRequestContentException', 400);
});

check('RequestTooLargeException: a payload, a package, a request over the limits', async () => {
  await expectError(lambda.send(new InvokeCommand(
                        {FunctionName: main, Payload: encode({pad: 'x'.repeat(7 << 20)})})),
                    'RequestTooLargeException', 413);
  // Over the zipped limit, within the request limit: the route's answer.
  await expectError(lambda.send(new UpdateFunctionCodeCommand(
                        {FunctionName: main, ZipFile: Buffer.alloc(maxZipBytes + 1)})),
                    'RequestTooLargeException', 413);
  // Over the request limit itself: the server's answer, before the body is read.
  await expectError(lambda.send(new CreateFunctionCommand(
                        {...createInput(`${prefix}huge`), Code: {ZipFile: Buffer.alloc(maxZipBytes * 2)}})),
                    'RequestTooLargeException', 413);
});

check('InvalidZipFileException for every malformed package, naming the reason', async () => {
  const bad = JSON.parse(process.env.WISP_BAD_ZIPS);
  for (const [file, reason] of Object.entries(bad)) {
    const error = await expectError(
        lambda.send(new CreateFunctionCommand(createInput(`${prefix}bad`, file))),
        'InvalidZipFileException', 400);
    assert.match(error.message, new RegExp(reason), `${file}: ${error.message}`);
    const update = await expectError(
        lambda.send(new UpdateFunctionCodeCommand({FunctionName: main, ZipFile: readZip(file)})),
        'InvalidZipFileException', 400);
    assert.match(update.message, new RegExp(reason), `${file}: ${update.message}`);
  }
  await expectError(lambda.send(new GetFunctionCommand({FunctionName: `${prefix}bad`})),
                    'ResourceNotFoundException', 404);
});

check('versions and an alias with weights: publish, route by weight, promote, roll back', async () => {
  // $LATEST runs app2.zip (payload version 2) here: it becomes version 1.
  const v1 = await lambda.send(new PublishVersionCommand({FunctionName: main, Description: 'app2'}));
  assert.equal(v1.Version, '1');
  assert.equal(v1.Description, 'app2');
  // Publish on an update: app.zip (payload version 1) becomes version 2.
  const v2 = await lambda.send(
      new UpdateFunctionCodeCommand({FunctionName: main, ZipFile: readZip('app.zip'), Publish: true}));
  assert.equal(v2.Version, '2');
  const listed = await lambda.send(new ListVersionsByFunctionCommand({FunctionName: main}));
  assert.deepEqual(listed.Versions.map((v) => v.Version), ['$LATEST', '1', '2']);
  const alias = await lambda.send(new CreateAliasCommand({
    FunctionName: main, Name: 'live', FunctionVersion: '1',
    RoutingConfig: {AdditionalVersionWeights: {'2': 0.5}}}));
  assert.equal(alias.FunctionVersion, '1');
  assert.deepEqual(alias.RoutingConfig.AdditionalVersionWeights, {'2': 0.5});
  const payloadVersionOf = {'1': 2, '2': 1};
  const executed = new Set();
  for (let i = 0; i < 40; i++) {  // both sides at 0.5: a miss has odds of one in 10^12
    const out = await lambda.send(
        new InvokeCommand({FunctionName: main, Qualifier: 'live', Payload: encode({who: 'c'})}));
    assert.equal(decode(out.Payload).version, payloadVersionOf[out.ExecutedVersion]);
    executed.add(out.ExecutedVersion);
  }
  assert.deepEqual([...executed].sort(), ['1', '2']);
  // Promote the canary, then roll back by moving the alias.
  for (const target of ['2', '1']) {
    const moved = await lambda.send(new UpdateAliasCommand({
      FunctionName: main, Name: 'live', FunctionVersion: target,
      RoutingConfig: {AdditionalVersionWeights: {}}}));
    assert.equal(moved.FunctionVersion, target);
    const out = await lambda.send(new InvokeCommand({FunctionName: `${main}:live`}));
    assert.equal(out.ExecutedVersion, target);
  }
  await expectError(lambda.send(new DeleteFunctionCommand({FunctionName: main, Qualifier: '1'})),
                    'ResourceConflictException', 409);
  await lambda.send(new DeleteAliasCommand({FunctionName: main, Name: 'live'}));
});

check('SigV4 rejected: a wrong secret, an unknown key', async () => {
  const wrongSecret = client(process.env.WISP_KEY_ID, process.env.WISP_KEY_SECRET + 'x');
  await expectError(wrongSecret.send(new ListFunctionsCommand({})), 'InvalidSignatureException', 403);
  const unknownKey = client('WKNOSUCHKEY000000000', process.env.WISP_KEY_SECRET);
  await expectError(unknownKey.send(new ListFunctionsCommand({})), 'UnrecognizedClientException', 403);
});

check('delete: gone from Get and from Invoke', async () => {
  for (const name of [main, `${prefix}page-0`, `${prefix}page-1`, `${prefix}page-2`]) {
    const deleted = await lambda.send(new DeleteFunctionCommand({FunctionName: name}));
    assert.equal(deleted.$metadata.httpStatusCode, 204);
  }
  await expectError(lambda.send(new GetFunctionCommand({FunctionName: main})),
                    'ResourceNotFoundException', 404);
});

for (const {name, run} of checks) {
  try {
    await run();
    console.log(`ok - ${name}`);
  } catch (error) {
    console.log(`not ok - ${name}`);
    console.log(error.stack || String(error));
    process.exit(1);
  }
}
console.log(`all ${checks.length} checks passed`);
