{
  description = "LLM serving cost benchmark harness: $ per request on setup S under latency budget L";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    crane.url = "github:ipetkov/crane";
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, crane, rust-overlay, flake-utils, ... }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = import nixpkgs { inherit system; overlays = [ (import rust-overlay) ]; };
        inherit (pkgs) lib;
        # Same toolchain as rustup (rust-toolchain.toml); the wasm32 target is
        # added here rather than in the toolchain file (see docs/development.md).
        toolchain = (pkgs.rust-bin.fromRustupToolchainFile ./rust-toolchain.toml).override {
          targets = [ "wasm32-unknown-unknown" ];
        };
        craneLib = (crane.mkLib pkgs).overrideToolchain (_: toolchain);

        src = lib.fileset.toSource {
          root = ./.;
          fileset = lib.fileset.unions [
            (craneLib.fileset.commonCargoSources ./.)
            ./harness/src/bundle/schema.sql
            ./harness/tests
            ./configs
          ];
        };

        # DuckDB is compiled from source (`bundled-duckdb`): no prebuilt
        # library download inside the sandbox. buildDepsOnly caches that
        # ~30 minute C++ build in its own derivation.
        harnessArgs = {
          inherit src;
          strictDeps = true;
          pname = "harness";
          cargoExtraArgs = "-p harness --locked --features bundled-duckdb";
          nativeBuildInputs = [ pkgs.git ];
          # Integration tests spawn servers on loopback; run them in CI, not in the sandbox.
          doCheck = false;
        };
        harnessDeps = craneLib.buildDepsOnly harnessArgs;
        harness = craneLib.buildPackage (harnessArgs // {
          cargoArtifacts = harnessDeps;
          postInstall = ''
            mkdir -p $out/share/harness
            cp -r ${./configs} $out/share/harness/configs
          '';
          meta = {
            description = "Benchmark LLM endpoints and report the cost per request under a latency budget";
            mainProgram = "harness";
          };
        });

        # The pure shared crate, built for the browser: the viewer's foundation.
        coreWasm = craneLib.buildPackage {
          inherit src;
          strictDeps = true;
          pname = "harness-core-wasm";
          cargoExtraArgs = "-p harness-core --locked";
          CARGO_BUILD_TARGET = "wasm32-unknown-unknown";
          doCheck = false;
          installPhaseCommand = "mkdir -p $out";
        };
      in
      {
        packages = {
          inherit harness;
          core-wasm = coreWasm;
          default = harness;
        };

        apps = {
          harness = {
            type = "app";
            program = "${harness}/bin/harness";
            meta.description = "Run a benchmark config: nix run .#harness -- configs/local.yml";
          };
          default = self.apps.${system}.harness;
        };

        checks = {
          inherit harness;
          core-wasm = coreWasm;
          fmt = craneLib.cargoFmt { inherit src; };
          clippy = craneLib.cargoClippy (harnessArgs // {
            cargoArtifacts = harnessDeps;
            cargoClippyExtraArgs = "--all-targets -- --deny warnings";
          });
        };

        devShells.default = craneLib.devShell {
          checks = self.checks.${system};
          packages = [ pkgs.duckdb pkgs.python3 pkgs.nodejs ];
        };
      });
}
