# Two architectures from one template: an arm64 and an x86_64 source, both in build.sources, the
# shape of HashiCorp's multi-source examples ("Build multiple images from one template",
# developer.hashicorp.com/packer/docs/templates/hcl_templates/blocks/build/source) and of teams'
# Graviton + x86 bases. Written from imagefleet init's template; the arm64 source AMI comes from
# the team's own variable (the family's `variables`), as public multi-arch templates do.

packer {
  required_version = ">= 1.6.0"
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "ami_regions" {
  type    = list(string)
  default = []
}

variable "source_ami" {
  type = string
}

variable "ami_name" {
  type = string
}

variable "imagefleet_tags" {
  type    = map(string)
  default = {}
}

variable "imagefleet_manifest" {
  type = string
}

variable "recipe_manifest" {
  type    = string
  default = ""
}

variable "source_ami_arm64" {
  type = string
}

variable "imagefleet_endpoint" {
  type    = string
  default = ""
}

source "amazon-ebs" "arm64" {
  region        = var.region
  ami_regions   = var.ami_regions
  source_ami    = var.source_ami_arm64
  instance_type = "t4g.micro"
  ami_name      = "${var.ami_name}-arm64"
  communicator  = "none"
  tags          = var.imagefleet_tags
  # the build instance, its volumes and the snapshots are imagefleet's too (what iam-policy lets it remove)
  run_tags        = var.imagefleet_tags
  run_volume_tags = var.imagefleet_tags
  snapshot_tags   = var.imagefleet_tags

  # local mode: the embedded endpoint (empty on real AWS, where these checks stay on)
  custom_endpoint_ec2        = var.imagefleet_endpoint
  skip_credential_validation = var.imagefleet_endpoint != ""
  skip_metadata_api_check    = var.imagefleet_endpoint != ""
}

source "amazon-ebs" "x86_64" {
  region        = var.region
  ami_regions   = var.ami_regions
  source_ami    = var.source_ami
  instance_type = "t3.micro"
  ami_name      = var.ami_name
  communicator  = "none"
  tags          = var.imagefleet_tags
  # the build instance, its volumes and the snapshots are imagefleet's too (what iam-policy lets it remove)
  run_tags        = var.imagefleet_tags
  run_volume_tags = var.imagefleet_tags
  snapshot_tags   = var.imagefleet_tags

  # local mode: the embedded endpoint (empty on real AWS, where these checks stay on)
  custom_endpoint_ec2        = var.imagefleet_endpoint
  skip_credential_validation = var.imagefleet_endpoint != ""
  skip_metadata_api_check    = var.imagefleet_endpoint != ""
}

build {
  sources = ["source.amazon-ebs.arm64", "source.amazon-ebs.x86_64"]

  provisioner "shell-local" {
    environment_vars = ["RECIPE=${var.recipe_manifest}", "MANIFEST=${var.imagefleet_manifest}"]
    inline           = ["cp \"$RECIPE\" \"$MANIFEST\""]
  }
}
