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

        # --- The viewer (packages.viewer): the static site `harness publish`
        # copies, built as viewer/build.sh builds it, from pinned sources only.

        # wasm-bindgen-cli must equal Cargo.lock's wasm-bindgen exactly. Built
        # from the crates.io source (hash: the unpacked crate whose sha256
        # matches the crates.io index), its dependencies vendored from the
        # crate's own Cargo.lock, copied to nix/ so evaluation reads no
        # fetched file.
        wasmBindgenVersion = "0.2.130";
        wasmBindgenCli = craneLib.buildPackage {
          pname = "wasm-bindgen-cli";
          version = wasmBindgenVersion;
          src = pkgs.fetchCrate {
            pname = "wasm-bindgen-cli";
            version = wasmBindgenVersion;
            hash = "sha256-9Og1O/6/VC3sc5hBjoIWBErmLW2UHGMsTQO+6+m/dng=";
          };
          cargoVendorDir = craneLib.vendorCargoDeps {
            cargoLock = ./nix/wasm-bindgen-cli-0.2.130.Cargo.lock;
          };
          cargoArtifacts = null;
          strictDeps = true;
          doCheck = false;
          cargoExtraArgs = "--locked --bin wasm-bindgen";
          nativeBuildInputs = [ pkgs.pkg-config ];
          buildInputs = [ pkgs.openssl ];
        };

        viewerSrc = lib.fileset.toSource {
          root = ./.;
          fileset = lib.fileset.unions [
            (craneLib.fileset.commonCargoSources ./.)
            ./viewer/js
            ./viewer/index.html
            ./viewer/start.js
            ./viewer/viewer.css
          ];
        };
        viewerArgs = {
          src = viewerSrc;
          strictDeps = true;
          pname = "viewer";
          cargoExtraArgs = "-p viewer --locked";
          CARGO_BUILD_TARGET = "wasm32-unknown-unknown";
          # viewer/build.sh's release profile: small wasm.
          CARGO_PROFILE_RELEASE_OPT_LEVEL = "z";
          CARGO_PROFILE_RELEASE_LTO = "true";
          CARGO_PROFILE_RELEASE_CODEGEN_UNITS = "1";
          CARGO_PROFILE_RELEASE_DEBUG = "false";
          CARGO_PROFILE_RELEASE_PANIC = "abort";
          doCheck = false;
        };
        viewerWasm = craneLib.buildPackage (viewerArgs // {
          cargoArtifacts = craneLib.buildDepsOnly viewerArgs;
          installPhaseCommand = ''
            mkdir -p $out
            cp target/wasm32-unknown-unknown/release/viewer.wasm $out/
          '';
        });

        # DuckDB-WASM and the shim's npm dependencies: one fetchurl per entry
        # of viewer/js/package-lock.json ("resolved" URL, checked against its
        # "integrity"); no hash of ours to keep.
        viewerNodeModules = pkgs.importNpmLock.buildNodeModules {
          npmRoot = ./viewer/js;
          nodejs = pkgs.nodejs;
        };

        viewer = pkgs.runCommand "viewer-site"
          {
            nativeBuildInputs = [ wasmBindgenCli pkgs.nodejs pkgs.bash ];
            meta.description = "The results viewer: a static site that opens result bundles with DuckDB-WASM";
          } ''
          mkdir -p $out
          wasm-bindgen --target web --no-typescript --out-dir $out/pkg ${viewerWasm}/viewer.wasm
          cp ${./viewer/index.html} $out/index.html
          cp ${./viewer/start.js} $out/start.js
          cp ${./viewer/viewer.css} $out/viewer.css
          cp -r ${./viewer/js} js
          chmod -R u+w js
          NODE_MODULES=${viewerNodeModules}/node_modules bash js/build-assets.sh $out
        '';

        # nix run .#viewer -- BUNDLE...: publishes the bundles with this
        # viewer into a temporary folder and serves it on loopback, port 8090
        # or $HARNESS_VIEWER_PORT (Range requests, as the viewer's lazy reads
        # need) until Ctrl-C.
        viewerApp = pkgs.writeShellApplication {
          name = "harness-viewer";
          runtimeInputs = [ harness pkgs.python3 pkgs.coreutils ];
          text = ''
            port="''${HARNESS_VIEWER_PORT:-8090}"
            site="$(mktemp -d)"
            trap 'rm -rf "$site"' EXIT
            if [ "$#" -eq 0 ]; then
              echo "harness-viewer: no bundle given; the site opens bundles from disk or ?bundle=URL" >&2
              cp -r ${viewer}/. "$site/"
              chmod -R u+w "$site"
            else
              rmdir "$site"
              harness publish "$@" --to "$site" --site ${viewer}
            fi
            python3 ${./scripts/serve-static.py} "$site" --port "$port"
          '';
        };
      in
      {
        packages = {
          inherit harness viewer;
          core-wasm = coreWasm;
          default = harness;
        };

        apps = {
          harness = {
            type = "app";
            program = "${harness}/bin/harness";
            meta.description = "Run a benchmark config: nix run .#harness -- configs/local.yml";
          };
          viewer = {
            type = "app";
            program = "${viewerApp}/bin/harness-viewer";
            meta.description = "Serve the viewer with bundles on loopback: nix run .#viewer -- results/local.duckdb";
          };
          default = self.apps.${system}.harness;
        };

        checks = {
          inherit harness viewer;
          core-wasm = coreWasm;
          fmt = craneLib.cargoFmt { inherit src; };
          clippy = craneLib.cargoClippy (harnessArgs // {
            cargoArtifacts = harnessDeps;
            cargoClippyExtraArgs = "--all-targets -- --deny warnings";
          });
        };

        devShells.default = craneLib.devShell {
          checks = self.checks.${system};
          # viewer/build.sh finds the wasm32 target in the toolchain and this
          # wasm-bindgen on PATH.
          packages = [ pkgs.duckdb pkgs.python3 pkgs.nodejs wasmBindgenCli ];
        };
      });
}
