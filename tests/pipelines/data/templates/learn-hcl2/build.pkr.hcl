packer {
  required_version = ">= 1.6.0, < 2.0.0"
}

build {
  name    = "learn-packer"
  sources = ["source.amazon-ebs.ubuntu"]

  provisioner "shell-local" {
    environment_vars = ["FOO=hello world", "RECIPE=${var.recipe_manifest}", "MANIFEST=${var.imagefleet_manifest}"]
    script           = "${path.root}/scripts/setup.sh"
  }

  provisioner "shell-local" {
    inline = ["echo This provisioner runs last"]
  }
}
