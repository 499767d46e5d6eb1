// Telling what a library is before and after dlopen: the ELF check that names a library built for
// another machine, the ABI by release number, the release read from a version banner in the
// library's .rodata, and what ABI '1.3' becomes when the release cannot be told (the 1.3.1 layout
// with its audio block zeroed, checked here byte by byte by a library that reads it).

import * as fs from 'fs';
import * as path from 'path';
import { emulatedRuntimePath, openRuntime, type AbiSetting, type RKLLMInput } from '../../lib';
import { makeScratchDir, rejectionOf, removeScratchDir } from './helpers';
import { EM_AARCH64, EM_ARM, EM_PPC64, EM_X86_64, FOREIGN_64, HOST_MACHINE as HOST, buildStandInLibrary, elfHeader } from './library-fixtures';

let scratch: string;

beforeAll(() => {
  scratch = makeScratchDir('runtime-identify');
});

afterAll(() => removeScratchDir(scratch));

describe('a library for another machine is named as such before dlopen', () => {
  // On an aarch64 machine the foreign 64-bit library is an x86-64 one, elsewhere an aarch64 one.
  const foreign64 = FOREIGN_64;
  test.each([
    ['64-bit, another machine', elfHeader({ bits: 64, machine: foreign64.machine }), foreign64.name],
    ['32-bit hard-float ARM', elfHeader({ bits: 32, machine: EM_ARM, flags: 0x05000400 }), 'armhf (32-bit ARM)'],
    ['big-endian', elfHeader({ bits: 64, bigEndian: true, machine: EM_PPC64 }), 'ppc64, big-endian'],
  ])('%s: RUNTIME_WRONG_ARCHITECTURE saying what it is for and what this machine is', async (_, header, builtFor) => {
    const file = path.join(scratch, `foreign-${builtFor.replace(/\W+/g, '-')}.so`);
    fs.writeFileSync(file, header);
    const error = await rejectionOf(openRuntime({ path: file }));
    expect(error.code).toBe('RUNTIME_WRONG_ARCHITECTURE');
    expect(error.message).toContain(`${file}: this librkllmrt is for ${builtFor}; this machine is ${HOST}.`);
    expect(error.message).not.toMatch(/No such file or directory/);
    // An explicit ABI changes nothing: the file cannot be loaded into this process at all.
    expect((await rejectionOf(openRuntime({ path: file, abi: '1.3.1' }))).code).toBe('RUNTIME_WRONG_ARCHITECTURE');
  });

  test("this machine's own ELF header passes the check and reaches dlopen", async () => {
    const file = path.join(scratch, 'native-header-only.so');
    fs.writeFileSync(file, elfHeader({ bits: 64, machine: HOST === 'aarch64' ? EM_AARCH64 : EM_X86_64 }));
    const error = await rejectionOf(openRuntime({ path: file }));
    expect(error.code).toBe('RUNTIME_LOAD_FAILED');
    expect(error.message).toContain('dlopen could not load');
  });
});

describe('the ABI by release number', () => {
  test.each<[AbiSetting, string, string]>([
    ['1.2.1', '1.2', '1.2'],
    ['1.2.3', '1.2', '1.2'],
    ['1.3.0', '1.3', '1.3'],
    ['1.3.1', '1.3.1', '1.3.1'],
  ])('%s opens the emulated %s build as ABI %s, with the release reported', async (release, build, abi) => {
    const runtime = await openRuntime({ path: emulatedRuntimePath(build as '1.2'), abi: release });
    expect(runtime.info).toMatchObject({ abi, abiSource: 'explicit', release });
    // With 'sim' the release picks the build.
    const sim = await openRuntime({ path: 'sim', abi: release });
    expect(sim.info).toMatchObject({ abi, abiSource: 'emulated-marker' });
  });

  test('a release of another layout contradicting the emulated build is refused', async () => {
    const error = await rejectionOf(openRuntime({ path: emulatedRuntimePath('1.3'), abi: '1.3.1' }));
    expect(error.code).toBe('RUNTIME_ABI_MISMATCH');
    expect(error.message).toContain('emulated runtime for ABI 1.3, but ABI 1.3.1 was asked for');
    expect((await rejectionOf(openRuntime({ path: emulatedRuntimePath('1.2'), abi: '1.3.0' }))).code).toBe('RUNTIME_ABI_MISMATCH');
  });

  test.each(['1.2.0', '1.1.4', '1.3.2', '1.3.1b1'])('release %s is not accepted: the supported ones are listed', async (release) => {
    const error = await rejectionOf(openRuntime({ path: 'sim', abi: release as AbiSetting }));
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'options.abi' });
    expect(error.reason).toBe(`expected a release number of 1.2.1, 1.2.2, 1.2.3, 1.3.0, 1.3.1, got "${release}"`);
  });
});

describe('the release in the version banner, and ABI 1.3 when it cannot be told', () => {
  const libraries = new Map<string, string>();
  /** The stand-in library with this banner release (none: no banner; '%s': a banner without one). */
  function library(banner: string | undefined): string {
    const key = banner ?? 'none';
    let file = libraries.get(key);
    if (file === undefined) {
      file = buildStandInLibrary(scratch, `libstand-in-${libraries.size}.so`, banner);
      libraries.set(key, file);
    }
    return file;
  }
  const audioRun: RKLLMInput = { input_type: 3, multimodal_input: { prompt: 'x', audio_embed: [0.5], n_audio: 1, n_audio_tokens: 1 } };
  const imageRun: RKLLMInput = { input_type: 3, multimodal_input: { prompt: 'x', image_embed: [0.5], n_image: 1, n_image_tokens: 1 } };

  test.each([
    ['1.3.1', '1.3.1'],
    ['1.3.0', '1.3'],
    ['1.2.2', '1.2'],
  ])('a banner of release %s: ABI %s, told by the version string', async (release, abi) => {
    const runtime = await openRuntime({ path: library(release) });
    expect(runtime.info).toMatchObject({ abi, abiSource: 'version-string', release, emulated: false });
  });

  test('a banner of 1.3.1 with ABI "1.3" asked: settled as 1.3.1, and audio reaches the library', async () => {
    const runtime = await openRuntime({ path: library('1.3.1'), abi: '1.3' });
    expect(runtime.info).toMatchObject({ abi: '1.3.1', abiSource: 'explicit', release: '1.3.1' });
    expect(runtime.info.note).toBe("ABI '1.3' settled as 1.3.1: the file is librkllmrt 1.3.1 by the version banner in its .rodata.");
    const model = await runtime.loadModel({ model_path: __filename });
    try {
      // The stand-in reports no hidden layer: the embedding size is not known, so only the counts are checked.
      expect(model.embeddingSize).toBe(0);
      expect((await model.run(audioRun)).text).toBe('audio block set');
      expect((await model.run(imageRun)).text).toBe('audio block zero');
    } finally {
      await model.destroy();
    }
  });

  test.each([['1.2.0'], ['1.9.0']])('a banner of release %s: RUNTIME_ABI_UNSUPPORTED naming it', async (release) => {
    const error = await rejectionOf(openRuntime({ path: library(release) }));
    expect(error.code).toBe('RUNTIME_ABI_UNSUPPORTED');
    expect(error.message).toContain(`is librkllmrt ${release} by the version banner in its .rodata`);
  });

  test('a banner of 1.2.2 with ABI "1.3" asked: the file contradicts it', async () => {
    const error = await rejectionOf(openRuntime({ path: library('1.2.2'), abi: '1.3' }));
    expect(error.code).toBe('RUNTIME_ABI_MISMATCH');
    expect(error.message).toContain('is librkllmrt 1.2.2 by the version banner in its .rodata, not a 1.3.x');
  });

  test.each([
    ['no banner', undefined],
    ['a banner that prints the release with %s', '%s'],
  ])('%s: unknown alone; with ABI "1.3", the 1.3.1 layout with the audio block zeroed, and audio refused', async (_, banner) => {
    const file = library(banner);
    expect((await rejectionOf(openRuntime({ path: file }))).code).toBe('RUNTIME_ABI_UNKNOWN');
    const runtime = await openRuntime({ path: file, abi: '1.3' });
    expect(runtime.info).toMatchObject({ abi: '1.3', abiSource: 'explicit', emulated: false });
    expect(runtime.info).not.toHaveProperty('release');
    expect(runtime.info.note).toMatch(/^The release of this 1\.3\.x library was not told apart \(no known blob id, no release number in a version banner\)/);
    expect(runtime.info.note).toContain("If it is 1.3.1, choose ABI '1.3.1'.");
    const model = await runtime.loadModel({ model_path: __filename });
    try {
      // A 1.3.1 library given this input finds zeros where its audio block is.
      expect((await model.run(imageRun)).text).toBe('audio block zero');
      const refused = await rejectionOf(model.run(audioRun));
      expect(refused).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'rkllm_input.multimodal_input.audio_embed' });
      expect(refused.reason).toContain("open it with ABI '1.3.1' if it is 1.3.1");
    } finally {
      await model.destroy();
    }
    // Told it is 1.3.1, the same file gets the audio.
    const told = await openRuntime({ path: file, abi: '1.3.1' });
    expect(told.info).toMatchObject({ abi: '1.3.1', abiSource: 'explicit', release: '1.3.1' });
    const model131 = await told.loadModel({ model_path: __filename });
    try {
      expect((await model131.run(audioRun)).text).toBe('audio block set');
    } finally {
      await model131.destroy();
    }
  });
});

