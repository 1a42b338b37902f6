/**
 * The runtime-spec version of what berth writes and reports: config.json from `berth-runtime
 * spec` and from an image (image/runtime-config.ts), the state of a container (runtime.md
 * "State": the version "with which the state complies"), the features' ociVersionMax and
 * `berth-runtime --version`. 1.1.0, not 1.2.x: crun 1.8 refuses a config of ociVersion 1.2.0
 * or later ("unknown version specified"), and a bundle berth writes must run under it.
 * native/Makefile reads this line for the front end's "creating" state.
 */
export const OCI_VERSION = '1.1.0';
