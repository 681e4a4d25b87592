"""CPU bundle only (packaging/headcast.spec adds this folder to hookspath when not --gpu): torch without
importing every one of its ~2,000 submodules at build time. The contributed hook lists them all as hidden
imports; here PyInstaller follows torch's own import statements from what Headcast imports instead, and the
bundle test (live run + offline render) checks nothing needed is missing. Sources stay next to the bytecode
("pyz+py") because TorchScript and torch.compile read them."""

from PyInstaller.utils.hooks import PY_DYLIB_PATTERNS, collect_data_files, collect_dynamic_libs

module_collection_mode = "pyz+py"
warn_on_missing_hiddenimports = False
datas = collect_data_files("torch", excludes=["**/*.h", "**/*.hpp", "**/*.cuh", "**/*.lib", "**/*.cpp",
                                              "**/*.pyi", "**/*.cmake"])
binaries = collect_dynamic_libs("torch", search_patterns=[*PY_DYLIB_PATTERNS, "*.so.*"])
bindepend_symlink_suppression = ["**/torch/lib/*.so*"]  # torch finds its own libraries next to each other
