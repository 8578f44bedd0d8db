# The two commands a new user needs (see README.md). Both run as root: the first run installs
# Debian packages and builds a Dagger engine from source (cached under /var/cache/webapp-dev).
.PHONY: build test pipeline fleet switch up down lint

build: ## run the build CodeBuild runs (lint, test, image, publish, deploy bundle in dist/)
	WEBAPP_DEV_FOR=build bash dev/with-env.sh go run ./cmd/build all

test: ## run every test: linters, go vet, unit and integration tests against the real services
	bash dev/with-env.sh bash dev/test.sh

pipeline: ## the whole pipeline locally: branch tip -> buildspec.yml -> appspec.yml -> URL (BRANCH=main; PARAMS=ssm-pull|ecr|approval|lb, the template parameter set of dev/params the run stands for)
	bash dev/with-env.sh go run ./dev/cmd/codepipeline --repo . --branch $(or $(BRANCH),main) --params $(or $(PARAMS),ssm-pull)

fleet: ## N instances (a dockerd each) behind HAProxy, deployed by the real agent; prints a prober's figures (N=3)
	bash dev/with-env.sh go run ./dev/cmd/fleet -n $(or $(N),3)

switch: ## the instance proxy's switch, watch and switch back: good, new good, cannot start, never healthy, fails after the switch, good, previous again; a prober's figures and the journal (N=1: the instance's own proxy; N=3: behind the load balancer)
	bash dev/with-env.sh go run ./dev/cmd/fleet -sequence -n $(or $(N),1)

up: ## start the dev environment only (prints the env file to source)
	bash dev/env.sh up

down: ## stop the dev environment and remove what it created (caches stay)
	bash dev/env.sh down

lint:
	bash dev/lint.sh
